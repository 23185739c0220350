"""What the access log and request log context add to a request through ObservabilityMiddleware, in µs.

In-process, no server and no sockets: a minimal ASGI app answering 5 bytes is called directly, so the figures
are the middleware's own CPU cost. Three stacks: the bare app, ObservabilityMiddleware (metrics, request id,
Server-Timing), and the same with `access_log=AccessLog()` writing through `configure_logging` to a file.
CPU time is measured per thread: the event loop's thread (what a request pays) and the log writer thread.
Rounds are interleaved and the report gives medians over them. Run from the repository root:

    taskset -c 0 python benchmarks/access_log.py --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from overdrive.observability import AccessLog, ObservabilityMiddleware, RequestMetrics, configure_logging

REQUESTS = 20_000
SCOPE = {  # complete enough for OpenTelemetry's ASGI middleware too (`benchmarks/exemplars.py` shares it)
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "scheme": "http",
    "server": ("127.0.0.1", 8000),
    "method": "GET",
    "path": "/items/1",
    "raw_path": b"/items/1",
    "query_string": b"",
    "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 50000),
}


async def _app(_scope: dict[str, Any], _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(_message: dict[str, Any]) -> None:
    return None


async def _serve(app: Any) -> tuple[float, float]:
    """Loop-thread and other-thread CPU µs per request."""
    thread, process = time.thread_time(), time.process_time()
    for _ in range(REQUESTS):
        await app(dict(SCOPE), _receive, _send)
    loop_cpu = time.thread_time() - thread
    return loop_cpu / REQUESTS * 1e6, max(0.0, time.process_time() - process - loop_cpu) / REQUESTS * 1e6


def main() -> None:
    """Interleave the three stacks for the given rounds and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        logs = configure_logging(Path(folder) / "access.log", capture_stdlib=False)
        stacks = {
            "bare app": _app,
            "ObservabilityMiddleware": ObservabilityMiddleware(_app, metrics=RequestMetrics()),
            "  + access log": ObservabilityMiddleware(
                _app, metrics=RequestMetrics(), access_log=AccessLog(logs=logs), logs=logs
            ),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in stacks}
        for round_index in range(args.rounds):
            order = list(stacks) if round_index % 2 == 0 else list(reversed(stacks))
            for name in order:
                results[name].append(asyncio.run(_serve(stacks[name])))
        logs.close(30)
        print(f"dropped lines: {logs.dropped}")
    print("| stack | loop-thread CPU µs/request (median) | (min) | log writer CPU µs/request | rounds |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        loop = statistics.median(run[0] for run in runs)
        fastest = min(run[0] for run in runs)
        other = statistics.median(run[1] for run in runs)
        print(f"| {name.strip()} | {loop:.2f} | {fastest:.2f} | {other:.2f} | {len(runs)} |")


if __name__ == "__main__":
    main()
