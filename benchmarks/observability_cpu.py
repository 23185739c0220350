"""Event-loop CPU per request of each `benchmarks/observability_apps.py` app, called in process (no server).

The HTTP benchmark (`benchmarks/observability.py`) measures what users see, but on a shared 2-core machine its
req/s move with the neighbours. This one calls each app's ASGI callable directly with a GET / scope and counts
the CPU time of the thread running the loop (`time.thread_time`), so it isolates what each stack adds per request
(the server's own cost, HTTP parsing and sockets, is left out: add it back to turn a difference into a req/s
ratio). Apps are interleaved, the order alternating per round; medians over the rounds. Run from the repository
root in the benchmark venv (the peers must be installed):

    taskset -c 0 /tmp/obs-venv/bin/python benchmarks/observability_cpu.py --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import observability_apps

APPS = (
    "starlette_bare",
    "starlette_passthrough",
    "starlette_overdrive",
    "starlette_overdrive_python",
    "starlette_stack",
    "starlette_stack_python",
    "starlette_exporter",
    "starlette_exporter_logged",
    "fastapi_bare",
    "fastapi_overdrive",
    "fastapi_instrumentator",
    "fastapi_passthrough",
)
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: dict[str, Any]) -> None:
    return None


async def _serve(app: Any, requests: int) -> float:
    """Loop-thread CPU µs per request over `requests` sequential calls."""
    started = time.thread_time()
    for _ in range(requests):
        await app(dict(SCOPE), _receive, _send)
    return (time.thread_time() - started) / requests * 1e6


async def _measure(names: list[str], rounds: int, requests: int) -> dict[str, list[float]]:
    apps = {name: getattr(observability_apps, name)() for name in names}
    for app in apps.values():
        await _serve(app, 200)  # warm-up: Starlette builds its middleware stack on the first call
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for name in order:
            results[name].append(await _serve(apps[name], requests))
    return results


def main() -> None:
    """Print a Markdown table: CPU µs per request, and the difference from the bare app of the same framework."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per app per round")
    parser.add_argument("--apps", nargs="+", default=list(APPS), choices=APPS)
    args = parser.parse_args()
    results = asyncio.run(_measure(args.apps, args.rounds, args.requests))  # logs: /tmp/observability-bench-*.log
    medians = {name: statistics.median(runs) for name, runs in results.items()}
    print(f"{args.rounds} interleaved rounds of {args.requests:,} requests; loop-thread CPU per request\n")
    print("| app | µs/request (median) | min-max | added to its bare app (µs) |")
    print("|---|---:|---|---:|")
    for name, runs in results.items():
        bare = medians.get("fastapi_bare" if name.startswith("fastapi") else "starlette_bare")
        added = f"{medians[name] - bare:+.2f}" if bare is not None else "-"
        print(f"| `{name}` | {medians[name]:.2f} | {min(runs):.2f}-{max(runs):.2f} | {added} |")


if __name__ == "__main__":
    main()
