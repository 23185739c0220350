"""L2 (Redis) hit cost against a raw redis-py GET, and cross-instance invalidation delay.

Run (starts its own redis-server pinned to core 0; the benchmark runs on core 1):

    taskset -c 1 python benchmarks/cache_l2.py --rounds 7

Part 1, L2 hit: a `Cache` with no memory tier (every read goes to Redis) reading one warm key, against
`redis.asyncio.Redis.get` of the same stored bytes on a client built the same way (same pool, hiredis). Contenders
are timed in an order rotated between rounds, `--calls` sequential awaits each; reported: median µs per call over
the rounds, and the median of the per-round ratios to the raw GET.

Part 2, invalidation delay: two `Cache` instances (separate connections and listeners, one process and event
loop) share Redis. B holds a key in L1; A sets a new value; the delay is from A's `set` returning to B first
serving the new value (B re-reads its cache in a loop that yields to the event loop). p50 and p99 over `--flips`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services import free_port

from overdrive.cache import Cache, MemoryTier, RedisTier

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

VALUE = {"id": 42, "name": "Espresso machine", "price": 249.9, "stock": 17, "tags": ["kitchen", "coffee"]}


@contextlib.contextmanager
def redis_on_core0() -> Iterator[str]:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    args = ["taskset", "-c", "0", shutil.which("redis-server") or "redis-server", "--port", str(port)]
    args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def per_call(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def hit_cost(url: str, rounds: int, calls: int) -> dict[str, list[float]]:
    tier = RedisTier.from_url(url, prefix="bench:", timeout=1.0)
    cache = Cache(None, tier)
    tagged = Cache(None, tier)
    await cache.set("hot", VALUE, ttl=3600)
    await tagged.set("hot-tagged", VALUE, ttl=3600, tags=("product:42", "category:7"))
    stored = await tier.client.get(tier.entry_key("hot"))
    raw = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    await raw.set("bench:raw", stored)

    @cache.cached(ttl=3600, key="hot")
    async def product() -> dict[str, Any]:
        return VALUE

    async def loader() -> dict[str, Any]:
        return VALUE

    contenders: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw redis-py GET (same bytes)": lambda: raw.get("bench:raw"),
        "overdrive cache.get (L2 hit)": lambda: cache.get("hot"),
        "overdrive @cache.cached (L2 hit)": product,
        "overdrive get_or_load, 2 tags (L2 hit)": lambda: tagged.get_or_load(
            "hot-tagged", loader, tags=("product:42", "category:7")
        ),
    }
    for fn in contenders.values():  # warm-up: connections, scripts, decoders
        await per_call(fn, 500)
    results: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(await per_call(contenders[name], calls))
    assert cache.metrics.misses == 0, "the L2 hit benchmark missed"
    for closing in (cache, tagged):
        await closing.aclose()
    await tier.aclose()
    await raw.aclose()
    return results


async def invalidation_delay(url: str, flips: int) -> list[float]:
    tiers = [RedisTier.from_url(url, prefix="bench-inv:", timeout=1.0) for _ in range(2)]
    a, b = Cache(MemoryTier(100), tiers[0]), Cache(MemoryTier(100), tiers[1])
    delays = []
    await a.set("k", 0)
    for i in range(1, flips + 1):
        while await b.get("k") != i - 1:  # noqa: ASYNC110 -- B holds the old value in L1
            await asyncio.sleep(0)
        await a.set("k", i)
        returned = time.perf_counter()
        while await b.get("k") != i:  # noqa: ASYNC110 -- spinning is the measurement
            await asyncio.sleep(0)
        delays.append((time.perf_counter() - returned) * 1e3)
    for cache in (a, b):
        await cache.aclose()
    for tier in tiers:
        await tier.aclose()
    return delays


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--flips", type=int, default=2000)
    parser.add_argument("--url", help="use this Redis instead of starting one on core 0")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(redis_on_core0())
        hits = await hit_cost(url, args.rounds, args.calls)
        delays = await invalidation_delay(url, args.flips)
        probe = aioredis.Redis.from_url(url)
        info = await probe.info("server")
        await probe.aclose()
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("redis", "hiredis", "msgspec"))
    print(f"Python {platform.python_version()}, Redis server {info['redis_version']}, {versions}")
    baseline = hits["raw redis-py GET (same bytes)"]
    print(f"\n| contender | µs per call (median of {args.rounds}) | min-max | x raw GET (median ratio) |")
    print("|---|---:|---:|---:|")
    for name, values in hits.items():
        ratio = statistics.median(v / base for v, base in zip(values, baseline, strict=True))
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} | {ratio:.2f} |")
    print(f"\nInvalidation delay over {len(delays)} flips: p50 {percentile(delays, 0.5):.3f} ms, ", end="")
    print(f"p99 {percentile(delays, 0.99):.3f} ms, max {max(delays):.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
