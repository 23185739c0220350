"""Locust closed-model load for the load-generator benchmark: FastHttpUser, GET / in a loop, no think time.

locust -f benchmarks/generators/locust_get.py --headless -u 64 -r 64 -t 10s --host http://127.0.0.1:18480
"""

from locust import FastHttpUser, constant, task


class GetRoot(FastHttpUser):
    wait_time = constant(0)

    @task
    def get_root(self) -> None:
        self.client.get("/")
