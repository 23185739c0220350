"""µs per L1 cache hit through each library's decorator, side by side in one process.

Run (peers live only in a benchmark venv, never in the project's dependencies):

    python3 -m venv /tmp/cb-venv
    /tmp/cb-venv/bin/pip install -e . aiocache==0.12.3 cashews==7.6.0 cachetools==8.0.0
    taskset -c 1 /tmp/cb-venv/bin/python benchmarks/cache_hit.py --rounds 7

Every round times each contender once, in an order rotated between rounds, over `--calls` hits of one warm key
(the same integer argument), inside one running coroutine. Reported: the median µs per call over the rounds and
each contender's median ratio to overdrive (per-round ratios, so drift between rounds cancels).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiocache
import cachetools
import cashews

from overdrive.cache import Cache, MemoryTier

Contender = tuple[str, Callable[[int], Any], bool]


def build() -> list[Contender]:
    """Each contender: a name, a function of one int, and whether its result must be awaited."""

    async def bare(x: int) -> int:
        return x + 1

    od = Cache(MemoryTier(10_000))

    @od.cached(ttl=3600)
    async def overdrive_async(x: int) -> int:
        return x + 1

    @od.cached(ttl=3600)
    def overdrive_sync(x: int) -> int:
        return x + 1

    @cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=3600))
    def cachetools_sync(x: int) -> int:
        return x + 1

    @aiocache.cached(ttl=3600, cache=aiocache.Cache.MEMORY)
    async def aiocache_async(x: int) -> int:
        return x + 1

    cashews_cache = cashews.Cache()
    cashews_cache.setup("mem://?size=10000")

    @cashews_cache(ttl="1h")
    async def cashews_async(x: int) -> int:
        return x + 1

    return [
        ("await bare coroutine (floor)", bare, True),
        ("overdrive @cache.cached (async)", overdrive_async, True),
        ("overdrive @cache.cached (sync)", overdrive_sync, False),
        ("cachetools @cached TTLCache (sync)", cachetools_sync, False),
        ("aiocache @cached SimpleMemoryCache", aiocache_async, True),
        ("cashews @cache mem://", cashews_async, True),
    ]


async def time_async(fn: Callable[[int], Awaitable[Any]], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        await fn(7)
    return (time.perf_counter_ns() - start) / calls / 1000


async def time_sync(fn: Callable[[int], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn(7)
    return (time.perf_counter_ns() - start) / calls / 1000


async def main(rounds: int, calls: int) -> None:
    contenders = build()
    for _, fn, is_async in contenders:  # warm: the first call loads the key
        for _ in range(100):
            await fn(7) if is_async else fn(7)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for round_no in range(rounds):
        order = contenders[round_no % len(contenders) :] + contenders[: round_no % len(contenders)]
        for name, fn, is_async in order:
            timer = time_async if is_async else time_sync
            samples[name].append(await timer(fn, calls))
    reference = samples["overdrive @cache.cached (async)"]
    versions = {p: importlib.metadata.version(p) for p in ("overdrive", "cachetools", "aiocache", "cashews")}
    print(
        f"Python {platform.python_version()}, {rounds} rounds x {calls} calls; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print()
    print("| contender | µs per hit (median) | min-max | x overdrive async (median) |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        ratio = statistics.median(v / r for v, r in zip(values, reference, strict=True))
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f}-{max(values):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.calls))
