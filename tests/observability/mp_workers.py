"""Code that runs in spawned child processes of the multi-process tests: workers and sweepers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from overdrive.observability import RequestMetrics, SharedMetricsStore
from overdrive.observability.metrics import DEFAULT_BUCKETS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier, Event


def record(directory: str, requests: int, ready: Event, stop: Connection) -> None:
    """A worker: serve `requests` GETs, leave one in flight, say so, and wait to be stopped or killed.

    The stop signal is a pipe, not an Event: setting an Event that a SIGKILLed process waits on hangs.
    """
    metrics = RequestMetrics(multiprocess_dir=directory, publish_interval=0.05)
    for index in range(requests):
        metrics.started("GET")
        metrics.finished("GET", "/items/{id}", 200 if index % 5 else 503, 0.003 * (index % 40))
    metrics.started("GET")
    metrics.render()  # publishes now, so the parent need not wait for the thread
    ready.set()
    stop.poll(60)
    metrics.close()


def sweep(directory: str, start: Barrier, results: Queue[int]) -> None:
    """A sweeper: wait for the others, fold dead workers, and report how many it folded."""
    store = SharedMetricsStore(directory, buckets=DEFAULT_BUCKETS)
    start.wait(30)
    results.put(store.sweep())
