"""The load engine's Python cost per response, in process, with no sockets: ns of CPU per response.

A closed-model engine gets a connection whose transport swallows writes (a C builtin, so no Python frame is
added); each response is then fed to the connection exactly as the event loop would (`data_received`), one
response per read, and the thread's CPU time (`time.thread_time`) over N responses gives ns per response. What
this leaves out is the event loop and the syscalls (the read, the write, epoll), which are the same whatever the
engine does; what it keeps is everything the engine adds per response: parsing, recording and the next send.

Run from the repository root, pinned to one core::

    taskset -c 1 python benchmarks/loadgen_engine.py                 # 7 repeats of 200k responses
    taskset -c 1 python benchmarks/loadgen_engine.py --case all      # every response shape

Rows: ``floor`` is the bare cost of the loop calling a C function per response (subtract it mentally), and each
response shape is timed through the real engine. Each figure is the median of the repeats (min and max beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING

from overdrive.loadtest._engine import ClosedEngine

if TYPE_CHECKING:
    from collections.abc import Callable

# What nginx (benchmarks/generators/nginx.conf) answers, byte for byte, apart from the date.
NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 17:20:01 GMT\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)
# Each case: the responses, and how many times running each one comes before the next.
CASES: dict[str, tuple[list[bytes], int]] = {
    "nginx": ([NGINX], 1),
    # A new date every 1,000 responses, as a server's clock ticks over.
    "nginx-dates": ([NGINX.replace(b"01 GMT", f"{i:02d} GMT".encode()) for i in range(60)], 1_000),
    # Lower-case names and a JSON body that differs from one response to the next, as from uvicorn or granian.
    "json": (
        [
            b"HTTP/1.1 200 OK\r\ndate: Thu, 26 Nov 2026 17:20:01 GMT\r\nserver: uvicorn\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            for body in (b'{"id": %d, "name": "item %d"}' % (i, i * 7) for i in range(60))
        ],
        1,
    ),
    "chunked": ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"], 1),
}
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18480\r\n\r\n"


def _engine() -> ClosedEngine:
    engine = ClosedEngine(
        host="127.0.0.1", port=1, ring=[(0, REQUEST)], names=1, open_model=False, timeout_ns=10**10, max_requests=None
    )
    engine.open_connection = lambda: None  # type: ignore[method-assign]  # no sockets here
    return engine


def _time_engine(case: tuple[list[bytes], int], n: int) -> float:
    responses, runs = case
    engine = _engine()
    conn = engine.connection_class(engine)
    conn.connection_made(SimpleNamespace(write=len, close=int, abort=int))  # type: ignore[arg-type]
    feed = conn.data_received
    reads = [responses[(i // runs) % len(responses)] for i in range(n)]
    start = time.thread_time_ns()
    for data in reads:
        feed(data)
    window = engine.take_window()  # once per second in a real run, i.e. every ~150k responses; timed too
    elapsed = time.thread_time_ns() - start
    counted = (window.latency[0].count, engine.sent)
    if counted != (n, n + 1):
        msg = f"The engine counted {counted[0]} responses and sent {counted[1]} requests for {n}; the bench is broken."
        raise RuntimeError(msg)
    return elapsed / n


def _time_floor(n: int) -> float:
    reads = [NGINX] * n
    feed: Callable[[bytes], object] = len
    start = time.thread_time_ns()
    for data in reads:
        feed(data)
    return (time.thread_time_ns() - start) / n


async def _run(cases: list[str], n: int, repeats: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in ["floor", *cases]}
    for _ in range(repeats):  # interleaved, so a burst of foreign load hits every row alike
        timings["floor"].append(_time_floor(n))
        for name in cases:
            timings[name].append(_time_engine(CASES[name], n))
    return timings


def main() -> None:
    """Print the median ns of CPU per response for each response shape."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=200_000, help="responses per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--case", nargs="+", default=["nginx"], choices=[*CASES, "all"])
    args = parser.parse_args()
    cases = list(CASES) if "all" in args.case else args.case
    # As in a load worker (overdrive.loadtest._worker): nothing collected during the hot path.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    timings = asyncio.run(_run(cases, args.responses, args.repeats))
    print(f"{'case':<12} {'median ns/response':>18} {'min':>7} {'max':>7}   ({args.repeats} x {args.responses:,})")
    for name, values in timings.items():
        print(f"{name:<12} {statistics.median(values):>18.0f} {min(values):>7.0f} {max(values):>7.0f}")


if __name__ == "__main__":
    main()
