"""A cache stampede: `--callers` concurrent misses on one cold key, in one process and across processes sharing Redis.

Run (peers live only in a benchmark venv; the script starts its own redis-server pinned to core 0 and must itself
run on core 1):

    python3 -m venv /tmp/cz-venv && /tmp/cz-venv/bin/pip install -e . aiocache==0.12.3 cashews==7.6.0
    taskset -c 1 /tmp/cz-venv/bin/python benchmarks/cache_stampede.py --trials 20

Each contender runs in `--procs` fresh worker processes (1 for the in-process part, then 4), each firing
`--callers / procs` concurrent calls of the decorated function on the trial's key. Each worker first makes one
warm-up call on a key of its own (connections, listeners and scripts up, as in a long-running server); then the
workers start every trial at one instant (a multiprocessing barrier: they block on it, so no event loop runs late).
The loader counts itself with a Redis INCR, sleeps `--loader-ms` and returns a unique token; every trial uses a new
cold key. Reported per contender: the distribution of loader calls per trial over `--trials` trials, the distinct
tokens callers received, Redis commands per trial (``INFO commandstats`` deltas on the private server, the loader's
INCRs taken out), and the slowest worker's time per trial.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import multiprocessing
import os
import platform
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from bench_redis import command_counts, delta, redis_server, server_version
from cache_zipf import CONTENDERS, Setup

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

IN_PROCESS = [
    "overdrive L1 (memory)",
    "overdrive L1+L2",
    "cashews mem://",
    "cashews redis://",
    "cashews redis:// lock=True",
    "aiocache memory",
    "aiocache memory cached_stampede",
    "aiocache redis",
    "aiocache redis cached_stampede",
]
ACROSS_PROCESSES = [
    "overdrive L1+L2",
    "overdrive L1+L2, 1 s timeout",
    "overdrive L2 (Redis)",
    "cashews redis://",
    "cashews redis:// lock=True",
    "aiocache redis",
    "aiocache redis cached_stampede",
]
BARRIER_SECONDS = 120.0


class CountingLoader:
    """Counts each call with a Redis INCR (shared by every process), sleeps, returns a token unique to the call."""

    def __init__(self, url: str, delay: float) -> None:
        # A pool as wide as the stampede: without single-flight every caller runs the loader at once.
        self.client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(url, max_connections=2000))
        self.delay = delay

    async def __call__(self, key: int) -> dict[str, Any]:
        await self.client.incr(f"loads:{key}")
        await asyncio.sleep(self.delay)
        return {"id": key, "token": uuid.uuid4().hex}


@dataclass
class Trial:
    loads: int
    tokens: int
    commands: int
    seconds: float
    errors: int


@dataclass(frozen=True)
class Job:
    """What one worker process runs."""

    name: str
    url: str
    args: argparse.Namespace
    callers: int


async def worker_main(job: Job, barrier: Barrier, out: Any) -> None:
    name, url, args, callers = job.name, job.url, job.args, job.callers
    loader = CountingLoader(url, args.loader_ms / 1000)
    built = CONTENDERS[name](Setup(url=url, loader=loader, all_keys=1000, l1_keys=100))
    try:
        await built.call(-os.getpid())  # warm up connections, listeners and scripts on a key of its own
        for trial in range(args.trials):
            barrier.wait(BARRIER_SECONDS)  # blocks the loop on purpose: every worker wakes at the same instant
            start = time.perf_counter()
            try:
                async with asyncio.timeout(args.limit):
                    values = await asyncio.gather(*(built.call(trial) for _ in range(callers)), return_exceptions=True)
            except TimeoutError:
                values = [TimeoutError()]
            seconds = time.perf_counter() - start
            tokens = sorted({v["token"] for v in values if isinstance(v, dict)})
            errors = [v for v in values if isinstance(v, BaseException)]
            note = f"{built.notes()} {type(errors[0]).__name__ + ': ' + str(errors[0])[:80] if errors else ''}"
            out.put((trial, tokens, len(errors), seconds, note))
    finally:
        await built.close()
        await loader.client.aclose()


def worker(job: Job, barrier: Barrier, out: Any) -> None:
    asyncio.run(worker_main(job, barrier, out))


def run_contender(name: str, procs: int, url: str, args: argparse.Namespace) -> list[Trial]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(procs + 1)
    out = context.Queue()
    probe = redis.Redis.from_url(url)
    probe.flushdb()
    workers = [
        context.Process(target=worker, args=(Job(name, url, args, args.callers // procs), barrier, out), daemon=True)
        for _ in range(procs)
    ]
    for process in workers:
        process.start()
    trials = []
    try:
        for trial in range(args.trials):
            before = command_counts(probe)
            barrier.wait(BARRIER_SECONDS)
            reports = [out.get(timeout=args.limit + 30) for _ in range(procs)]
            assert all(report[0] == trial for report in reports), "a worker reported for another trial"
            loads = int(probe.get(f"loads:{trial}") or 0)
            used = delta(command_counts(probe), before)
            used.pop("incr", None)
            tokens = {token for report in reports for token in report[1]}
            if args.verbose:
                print(f"  trial {trial}: {loads} loads; " + " | ".join(r[4] for r in reports), flush=True)
            trials.append(
                Trial(loads, len(tokens), used.total(), max(r[3] for r in reports), sum(r[2] for r in reports))
            )
    finally:
        for process in workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        probe.close()
    return trials


def distribution(values: list[int]) -> str:
    return ", ".join(f"{value}: {count}x" for value, count in sorted(Counter(values).items()))


def report(rows: list[tuple[str, int, list[Trial]]], args: argparse.Namespace, redis_version: str) -> None:
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}" for p in ("overdrive", "cashews", "aiocache", "redis", "msgspec")
    )
    print(f"\nPython {platform.python_version()}, Redis server {redis_version}, {versions}")
    print(f"{args.callers} concurrent calls on one cold key, loader {args.loader_ms} ms, {args.trials} trials each")
    print(
        "\n| contender | processes x calls | loader calls per trial (value: trials) | distinct values returned "
        "(median) | Redis cmds per trial (median) | slowest worker ms (median) | errors |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for name, procs, trials in rows:
        print(
            f"| {name} | {procs} x {args.callers // procs} | {distribution([t.loads for t in trials])} | "
            f"{statistics.median(t.tokens for t in trials):.0f} | "
            f"{statistics.median(t.commands for t in trials):,.0f} | "
            f"{statistics.median(t.seconds for t in trials) * 1000:.0f} | {sum(t.errors for t in trials)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4, help="processes for the cross-process part")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--loader-ms", type=float, default=50.0)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds before a trial is cut off")
    parser.add_argument("--redis-core", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run the contenders whose names contain any of these")
    parser.add_argument("--verbose", action="store_true", help="print each trial's per-worker counters")
    args = parser.parse_args()
    wanted = [(name, 1) for name in IN_PROCESS] + [(name, args.procs) for name in ACROSS_PROCESSES]
    wanted = [(n, p) for n, p in wanted if not args.only or any(part in n for part in args.only)]
    rows = []
    with redis_server(core=args.redis_core) as url:
        with redis.Redis.from_url(url) as probe:
            version = server_version(probe)
        for name, procs in wanted:
            trials = run_contender(name, procs, url, args)
            rows.append((name, procs, trials))
            print(f"{name} x{procs}: loads {[t.loads for t in trials]}", flush=True)
    report(rows, args, version)


if __name__ == "__main__":
    main()
