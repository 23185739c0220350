"""Another instance of the application, as a separate process sharing Redis with the test (run by the tests).

Usage: ``python tests/cache/peer.py MODE REDIS_URL PREFIX [ARG]``

* ``stampede N``: say ready, wait for the go signal, make N concurrent `get_or_load` calls on one key whose loader
  counts itself in Redis (``{prefix}loads``) and sleeps; print the distinct values received as JSON.
* ``hold``: start loading a key (counted in ``{prefix}loads``) with a loader that never finishes, holding its lease
  (``lease_ttl`` 0.5 s), until killed.
* ``watch``: read key ``k`` (L1 filled from L2), say ready, then read it every millisecond from L1 until the value
  changes; print the new value.
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis

from overdrive.cache import Cache, MemoryTier, RedisTier

LOAD_SECONDS = 0.3


async def stampede(url: str, prefix: str, concurrency: int) -> None:
    # A generous bound and a slot per caller: this checks the lease protocol, and on a loaded CI machine a 2 s bound
    # with 50 slots made callers fail open (and load) while queueing for a connection.
    tier = RedisTier.from_url(url, prefix=prefix, timeout=10.0, max_connections=concurrency + 10)
    cache = Cache(MemoryTier(100), tier)
    counter = aioredis.Redis.from_url(url)

    async def loader() -> str:
        await counter.incr(prefix + "loads")
        await asyncio.sleep(LOAD_SECONDS)
        return "loaded"

    try:
        await counter.incr(prefix + "ready")
        await counter.blpop([prefix + "go"], timeout=30)
        values = await asyncio.gather(*(cache.get_or_load("hot", loader) for _ in range(concurrency)))
        print(json.dumps(sorted(set(values))))  # noqa: T201 -- the result goes to the test through stdout
    finally:
        await cache.aclose()
        await tier.aclose()
        await counter.aclose()


async def hold(url: str, prefix: str) -> None:
    tier = RedisTier.from_url(url, prefix=prefix, timeout=2.0, lease_ttl=0.5)
    cache = Cache(MemoryTier(100), tier)
    counter = aioredis.Redis.from_url(url)

    async def loader() -> str:
        await counter.incr(prefix + "loads")
        await asyncio.sleep(3600)
        return "never"

    await cache.get_or_load("k", loader)


async def watch(url: str, prefix: str) -> None:
    tier = RedisTier.from_url(url, prefix=prefix, timeout=2.0)
    cache = Cache(MemoryTier(100), tier)
    counter = aioredis.Redis.from_url(url)
    try:
        first = await cache.get("k")
        await counter.incr(prefix + "ready")
        while (value := await cache.get("k")) == first:  # noqa: ASYNC110 -- reading every 1 ms is the point
            await asyncio.sleep(0.001)
        print(json.dumps(value))  # noqa: T201 -- the result goes to the test through stdout
    finally:
        await cache.aclose()
        await tier.aclose()
        await counter.aclose()


def main() -> None:
    mode, url, prefix, *rest = sys.argv[1:]
    if mode == "stampede":
        asyncio.run(stampede(url, prefix, int(rest[0])))
    elif mode == "hold":
        asyncio.run(hold(url, prefix))
    else:
        asyncio.run(watch(url, prefix))


if __name__ == "__main__":
    main()
