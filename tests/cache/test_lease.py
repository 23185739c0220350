"""Cross-process stampede protection: one loader call across processes sharing Redis, and takeover on holder death."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from overdrive.cache import Cache, MemoryTier, RedisTier
from tests.cache.redis_helpers import peer_command, peer_env, purge, unique_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix()
    yield value
    purge(redis_url, value)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def wait_for_count(client: aioredis.Redis, key: str, count: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while int(await client.get(key) or 0) < count:
        assert time.monotonic() < deadline, f"{key} did not reach {count} within {within} s"
        await asyncio.sleep(0.02)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(peer_command(*args), env=peer_env(), stdout=subprocess.PIPE, text=True)


class TestStampedeAcrossProcesses:
    async def test_a_thousand_concurrent_misses_in_four_processes_load_once(
        self, redis_url: str, prefix: str, client: aioredis.Redis
    ) -> None:
        peers = [start("stampede", redis_url, prefix, "250") for _ in range(4)]
        try:
            await wait_for_count(client, prefix + "ready", 4)
            await client.rpush(prefix + "go", *"abcd")
            outputs = [await asyncio.to_thread(peer.communicate, timeout=60) for peer in peers]
        finally:
            for peer in peers:
                peer.kill()
                peer.communicate()
        assert [peer.returncode for peer in peers] == [0, 0, 0, 0]
        assert [json.loads(out) for out, _ in outputs] == [["loaded"]] * 4
        assert await client.get(prefix + "loads") == b"1"


class TestHolderDeath:
    async def test_when_the_lease_holder_dies_another_process_loads(
        self, redis_url: str, prefix: str, client: aioredis.Redis
    ) -> None:
        holder = start("hold", redis_url, prefix)
        try:
            await wait_for_count(client, prefix + "loads", 1)
            assert await client.exists(prefix + "lease:k") == 1
        finally:
            holder.kill()
            holder.communicate()
        tier = RedisTier.from_url(redis_url, prefix=prefix, timeout=1.0, lease_ttl=0.5)
        cache = Cache(MemoryTier(10), tier)
        calls = 0

        async def loader() -> str:
            nonlocal calls
            calls += 1
            return "mine"

        try:
            started = time.monotonic()
            assert await cache.get_or_load("k", loader) == "mine"
            assert calls == 1
            # It waited for the dead holder's lease to expire (0.5 s at most), not for a poll loop or max_wait.
            assert time.monotonic() - started < 5
        finally:
            await cache.aclose()
            await tier.aclose()


class TestWaitersInOneProcess:
    async def test_a_waiter_is_woken_by_the_release_not_by_the_lease_expiry(self, redis_url: str, prefix: str) -> None:
        tiers = [RedisTier.from_url(redis_url, prefix=prefix, timeout=1.0, lease_ttl=30) for _ in range(2)]
        first, second = (Cache(MemoryTier(10), tier) for tier in tiers)
        release = asyncio.Event()
        calls = 0

        async def slow() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return "v"

        try:
            leading = asyncio.ensure_future(first.get_or_load("k", slow))
            while calls == 0:  # noqa: ASYNC110 -- polling a test counter, not the lease
                await asyncio.sleep(0.01)
            waiting = asyncio.ensure_future(second.get_or_load("k", slow))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            started = time.monotonic()
            release.set()
            assert await asyncio.wait_for(waiting, 5) == "v"
            assert time.monotonic() - started < 1  # the release wakes it; the lease would last 30 s
            assert await leading == "v"
            assert calls == 1
            assert second.metrics.lease_waits == 1
        finally:
            for cache in (first, second):
                await cache.aclose()
            for tier in tiers:
                await tier.aclose()


class TestSlowLoads:
    async def test_a_load_slower_than_the_lease_renews_it_and_runs_once(self, redis_url: str, prefix: str) -> None:
        tiers = [RedisTier.from_url(redis_url, prefix=prefix, timeout=1.0, lease_ttl=0.3) for _ in range(2)]
        first, second = (Cache(MemoryTier(10), tier) for tier in tiers)
        calls = 0

        async def slow() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.75)  # 2.5 lease TTLs, within the waiter's max_wait of 3 TTLs
            return "slow value"

        try:
            holder = asyncio.create_task(first.get_or_load("k", slow))
            while calls == 0:  # noqa: ASYNC110 -- polling a test counter, not the lease
                await asyncio.sleep(0.005)
            assert await second.get_or_load("k", slow) == "slow value"
            assert await holder == "slow value"
            assert calls == 1
            assert first.metrics.lease_renewals >= 2
            assert second.metrics.lease_waits == 1
            assert await tiers[0].client.exists(prefix + "lease:k") == 0  # released, not left to expire
        finally:
            for cache in (first, second):
                await cache.aclose()
            for tier in tiers:
                await tier.aclose()
