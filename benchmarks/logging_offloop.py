"""Log calls from a coroutine: call latency and event-loop lag, with a healthy sink and one that stalls for 1 s.

Three ways to write JSON lines, each from the same paced workload (20 log calls every millisecond, about 20k
lines/s, while a ticker coroutine measures how late its 1 ms sleeps wake up):

- ``overdrive``: `configure_logging` (structlog rendered with orjson on the caller; a bounded buffer drained by
  one writer thread; lines dropped and counted when the buffer is full).
- ``structlog-sync``: the same structlog processors and orjson rendering, written by structlog's `BytesLogger`
  straight to the sink from the caller (structlog's recommended fast production setup).
- ``no logging (floor)``: the same workload calling an empty lambda: what the machine and the loop give anyway.
- ``stdlib-queue``: stdlib `logging` with a `QueueHandler` and a `QueueListener` thread whose handler renders
  JSON with orjson (the stdlib's own off-thread recipe; its queue is unbounded).

Two sinks: ``file`` (a file on local disk) and ``stalled`` (a pipe read by a child process that reads for 0.5 s,
then stops reading for 1 s, over and over: the pipe fills and writes block, as with a stuck log shipper).
The logging process should be pinned to one core and the pipe reader runs pinned to the other:

    taskset -c 0 python benchmarks/logging_offloop.py --rounds 3              # about 1.5 minutes
    taskset -c 0 python benchmarks/logging_offloop.py --rounds 1 --seconds 2  # smoke test

Each round runs every (writer, sink) pair once, in an order that alternates between rounds; the report gives
the median over rounds of each run's p50 / p99 call time, p50 / p99 / max loop lag (lag counted per tick
that was due, so a stall weighs by its length), and CPU time per log call: on the loop's thread (the caller's
cost, counting the workload's own loop; compare with the floor row) and on other threads (the writer's cost).
CPU times are the figures least disturbed by other work on a shared machine. Results go to
`benchmarks/results/logging-<UTC>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from overdrive.observability import configure_logging

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

RESULTS_DIR = Path(__file__).resolve().parent / "results"
READER_CORE = "1"
BURST = 20  # log calls per burst
PERIOD = 0.001  # seconds between bursts, and the ticker's sleep
# The pipe reader: reads for 0.5 s, then stops reading for 1 s, until its stdin closes.
READER = """
import os, sys, time
fd = sys.stdin.fileno()
reading_since = time.monotonic()
while True:
    if time.monotonic() - reading_since > 0.5:
        time.sleep(1.0)
        reading_since = time.monotonic()
    if not os.read(fd, 1 << 16):
        break
"""


@dataclass
class Run:
    """One (writer, sink) run's figures."""

    writer: str
    sink: str
    calls: int
    call_p50_ns: float
    call_p99_ns: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    dropped: int
    loop_cpu_us_per_call: float
    other_threads_cpu_us_per_call: float


def _per_expected_tick(lags: list[float]) -> list[float]:
    """One lag per tick that was due, not per tick that happened: a 1 s stall counts ~1000 times, not once.

    The same correction as HdrHistogram's expected-interval recording: without it a ticker that slept through a
    stall reports one bad sample and a flattering p99.
    """
    corrected: list[float] = []
    for lag in lags:
        corrected.append(lag)
        missed = lag - PERIOD
        while missed > 0:
            corrected.append(missed)
            missed -= PERIOD
    return corrected


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _workload(log: Callable[[int], object], seconds: float) -> tuple[list[int], list[float]]:
    """Log in paced bursts while a ticker measures loop lag; returns call times (ns) and lags (s)."""
    loop = asyncio.get_running_loop()
    calls: list[int] = []
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            due = loop.time() + PERIOD
            await asyncio.sleep(PERIOD)
            lags.append(loop.time() - due)

    task = asyncio.create_task(ticker())
    clock = time.perf_counter_ns
    end = time.monotonic() + seconds
    n = 0
    bind_contextvars(request_id="5f2b9c1e8a7d4c3b", route="/orders/{order_id}", method="POST")
    while time.monotonic() < end:
        for _ in range(BURST):
            started = clock()
            log(n)
            calls.append(clock() - started)
            n += 1
        await asyncio.sleep(PERIOD)
    clear_contextvars()
    done = True
    await task
    return calls, lags


@contextmanager
def _sink(kind: str) -> Iterator[IO[bytes]]:
    if kind == "file":
        with tempfile.TemporaryDirectory() as folder, (Path(folder) / "bench.log").open("ab", buffering=0) as file:
            yield file
        return
    reader = subprocess.Popen(
        ["taskset", "-c", READER_CORE, sys.executable, "-c", READER], stdin=subprocess.PIPE, bufsize=0
    )
    assert reader.stdin is not None
    try:
        yield reader.stdin
    finally:
        reader.stdin.close()
        reader.wait(30)


def _structlog_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]


def _run_overdrive(sink: IO[bytes], seconds: float) -> tuple[list[int], list[float], int]:
    logs = configure_logging(sink, capture_stdlib=False)
    log = structlog.get_logger().bind()
    calls, lags = asyncio.run(_workload(lambda n: log.info("order placed", order_id=n, total=12.5), seconds))
    dropped = logs.dropped
    logs.close(30)
    return calls, lags, dropped


def _run_structlog_sync(sink: IO[bytes], seconds: float) -> tuple[list[int], list[float], int]:
    before = structlog.get_config()
    structlog.configure(
        processors=[*_structlog_processors(), structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(sink),
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger().bind()
    try:
        calls, lags = asyncio.run(_workload(lambda n: log.info("order placed", order_id=n, total=12.5), seconds))
    finally:
        structlog.configure(**before)
    return calls, lags, 0


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, UTC),
        }
        return orjson.dumps(event, option=orjson.OPT_UTC_Z).decode()


class _BytesHandler(logging.Handler):
    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record).encode() + b"\n")


def _run_stdlib_queue(sink: IO[bytes], seconds: float) -> tuple[list[int], list[float], int]:
    lines: queue.Queue[logging.LogRecord] = queue.Queue(-1)
    target = _BytesHandler(sink)
    target.setFormatter(_JSONFormatter())
    listener = logging.handlers.QueueListener(lines, target)
    logger = logging.getLogger("bench.stdlib")
    logger.propagate = False
    handler = logging.handlers.QueueHandler(lines)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    listener.start()
    try:
        calls, lags = asyncio.run(_workload(lambda n: logger.info("order placed %d", n), seconds))
    finally:
        logger.removeHandler(handler)
        listener.stop()
    return calls, lags, 0


def _run_nothing(_stream: IO[bytes], seconds: float) -> tuple[list[int], list[float], int]:
    calls, lags = asyncio.run(_workload(lambda _n: None, seconds))
    return calls, lags, 0


WRITERS: dict[str, Callable[[IO[bytes], float], tuple[list[int], list[float], int]]] = {
    "no logging (floor)": _run_nothing,
    "overdrive": _run_overdrive,
    "structlog-sync": _run_structlog_sync,
    "stdlib-queue": _run_stdlib_queue,
}


def _measure(writer: str, sink: str, seconds: float) -> Run:
    with _sink(sink) as stream:
        thread_started, process_started = time.thread_time(), time.process_time()
        calls, raw_lags, dropped = WRITERS[writer](stream, seconds)
        loop_cpu = time.thread_time() - thread_started
        other_cpu = max(0.0, time.process_time() - process_started - loop_cpu)
    lags = _per_expected_tick(raw_lags)
    return Run(
        writer=writer,
        sink=sink,
        calls=len(calls),
        call_p50_ns=_percentile([float(c) for c in calls], 0.50),
        call_p99_ns=_percentile([float(c) for c in calls], 0.99),
        lag_p50_ms=_percentile(lags, 0.50) * 1000,
        lag_p99_ms=_percentile(lags, 0.99) * 1000,
        lag_max_ms=max(lags) * 1000,
        dropped=dropped,
        loop_cpu_us_per_call=loop_cpu / len(calls) * 1e6,
        other_threads_cpu_us_per_call=other_cpu / len(calls) * 1e6,
    )


def _table(runs: list[Run]) -> str:
    rows = [
        (
            "| writer | sink | calls (median) | call p50 ns | call p99 ns | loop lag p50 ms | loop lag p99 ms"
            " | loop lag max ms | dropped (median) | loop-thread CPU µs/call | other threads CPU µs/call | rounds |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sink in ("file", "stalled"):
        for writer in WRITERS:
            mine = [run for run in runs if run.writer == writer and run.sink == sink]
            if not mine:
                continue

            def median(field: str, mine: list[Run] = mine) -> float:
                return statistics.median(getattr(run, field) for run in mine)

            rows.append(
                f"| `{writer}` | {sink} | {median('calls'):,.0f} | {median('call_p50_ns'):,.0f} |"
                f" {median('call_p99_ns'):,.0f} | {median('lag_p50_ms'):.3f} | {median('lag_p99_ms'):.3f} |"
                f" {median('lag_max_ms'):.1f} | {median('dropped'):,.0f} | {median('loop_cpu_us_per_call'):.2f} |"
                f" {median('other_threads_cpu_us_per_call'):.2f} | {len(mine)} |"
            )
    return "\n".join(rows)


def main() -> None:
    """Run the interleaved rounds and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    parser.add_argument("--sinks", nargs="+", default=["file", "stalled"], choices=["file", "stalled"])
    args = parser.parse_args()
    pairs = [(writer, sink) for sink in args.sinks for writer in WRITERS]
    runs: list[Run] = []
    for round_index in range(args.rounds):
        for writer, sink in pairs if round_index % 2 == 0 else reversed(pairs):
            run = _measure(writer, sink, args.seconds)
            runs.append(run)
            print(
                f"round {round_index + 1} {writer:<18} {sink:<8} call p99 {run.call_p99_ns:>9,.0f} ns"
                f"  lag p99 {run.lag_p99_ms:8.3f} ms  max {run.lag_max_ms:8.1f} ms  dropped {run.dropped:,}",
                flush=True,
            )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "reader_core": READER_CORE,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "burst": BURST,
        "period_s": PERIOD,
    }
    (RESULTS_DIR / f"logging-{stamp}.json").write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}))
    table = _table(runs)
    (RESULTS_DIR / f"logging-{stamp}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
