"""Cross-instance L1 coherence: peers drop what others wrote or invalidated, and flush when their channel drops."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from overdrive.cache import Cache, MemoryTier, RedisTier
from tests.cache.redis_helpers import peer_command, peer_env, purge, unique_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# Eventual, not timed: the delay itself is measured by benchmarks/cache_l2.py.
BOUND = 5.0


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix()
    yield value
    purge(redis_url, value)


@pytest.fixture
async def pair(redis_url: str, prefix: str) -> AsyncIterator[tuple[Cache, Cache]]:
    """Two instances: each its own L1 and its own connection, one Redis."""
    tiers = [RedisTier.from_url(redis_url, prefix=prefix, timeout=1.0) for _ in range(2)]
    caches = (Cache(MemoryTier(100), tiers[0]), Cache(MemoryTier(100), tiers[1]))
    yield caches
    for cache in caches:
        await cache.aclose()
    for tier in tiers:
        await tier.aclose()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + BOUND
    while not await check():
        assert time.monotonic() < deadline, f"not within {BOUND} s"
        await asyncio.sleep(0.005)


async def served_from_l1(cache: Cache, key: str) -> bool:
    return cache.l1 is not None and key in cache.l1


class TestPeersDropWhatOthersChange:
    async def test_a_set_replaces_the_old_value_in_the_peers_l1(self, pair: tuple[Cache, Cache]) -> None:
        a, b = pair
        await a.set("k", "old")
        assert await b.get("k") == "old"
        assert await served_from_l1(b, "k")
        await a.set("k", "new")

        async def b_sees_new() -> bool:
            return bool(await b.get("k") == "new")

        await eventually(b_sees_new)
        assert b.metrics.peer_invalidations >= 1

    async def test_a_delete_drops_the_key_from_the_peers_l1(self, pair: tuple[Cache, Cache]) -> None:
        a, b = pair
        await a.set("k", "v")
        assert await b.get("k") == "v"
        await a.delete("k")

        async def b_misses() -> bool:
            return bool(await b.get("k", "gone") == "gone")

        await eventually(b_misses)

    async def test_a_tag_invalidation_reaches_the_peers_l1(self, pair: tuple[Cache, Cache]) -> None:
        a, b = pair
        calls = 0

        async def loader() -> int:
            nonlocal calls
            calls += 1
            return calls

        assert await b.get_or_load("k", loader, tags=("t",)) == 1
        assert await b.get_or_load("k", loader, tags=("t",)) == 1
        await a.invalidate_tags("t")

        async def b_reloads() -> bool:
            return await b.get_or_load("k", loader, tags=("t",)) == 2

        await eventually(b_reloads)

    async def test_a_clear_clears_the_peers_l1(self, pair: tuple[Cache, Cache]) -> None:
        a, b = pair
        await b.set("k", "v")
        await a.clear()

        async def b_empty() -> bool:
            return b.l1 is not None and len(b.l1) == 0

        await eventually(b_empty)

    async def test_an_instance_ignores_its_own_messages(self, pair: tuple[Cache, Cache]) -> None:
        a, _ = pair
        await a.set("k", "v")
        await a.set("k", "w")
        await asyncio.sleep(0.1)
        assert await served_from_l1(a, "k")
        assert a.metrics.peer_invalidations == 0

    async def test_the_decorators_invalidate_reaches_peers(self, pair: tuple[Cache, Cache]) -> None:
        a, b = pair
        versions = {"a": 0, "b": 0}

        def make(cache: Cache, name: str) -> Callable[[int], Awaitable[str]]:
            @cache.cached(ttl=60, key="item:{n}")
            async def item(n: int) -> str:
                versions[name] += 1
                return f"{name}{versions[name]}"

            return item

        item_a, item_b = make(a, "a"), make(b, "b")
        assert await item_a(1) == "a1"
        assert await item_b(1) == "a1"  # from L2
        await item_a.invalidate(1)  # type: ignore[attr-defined]

        async def b_reloads() -> bool:
            return await item_b(1) == "b1"

        await eventually(b_reloads)


class TestDroppedChannel:
    async def test_a_dropped_subscription_flushes_l1_and_resubscribes(
        self, pair: tuple[Cache, Cache], redis_url: str
    ) -> None:
        a, b = pair
        await a.set("k", "old")
        assert await b.get("k") == "old"
        assert b._listener is not None
        assert b._listener.connected
        tier = b._listener.tier
        for client in await tier.client.client_list(_type="pubsub"):
            if client["name"] == tier.listener_name:  # this test's two listeners, no other test's
                await tier.client.client_kill_filter(_id=client["id"])

        async def b_flushed_and_back() -> bool:
            listener = b._listener
            return listener is not None and listener.connected and not await served_from_l1(b, "k")

        await eventually(b_flushed_and_back)
        assert await b.get("k") == "old"  # refilled from L2
        await a.set("k", "new")

        async def b_sees_new() -> bool:
            return bool(await b.get("k") == "new")

        await eventually(b_sees_new)


class TestAcrossProcesses:
    async def test_another_process_stops_serving_the_old_value(self, redis_url: str, prefix: str) -> None:
        tier = RedisTier.from_url(redis_url, prefix=prefix, timeout=1.0)
        cache = Cache(MemoryTier(100), tier)
        await cache.set("k", "old")
        peer = subprocess.Popen(  # noqa: ASYNC220 -- starting a process does not block on it
            peer_command("watch", redis_url, prefix), env=peer_env(), stdout=subprocess.PIPE, text=True
        )
        try:
            while int(await tier.client.get(prefix + "ready") or 0) < 1:
                assert peer.poll() is None
                await asyncio.sleep(0.02)
            await cache.set("k", "new")
            out, _ = await asyncio.to_thread(peer.communicate, timeout=BOUND + 10)
            assert json.loads(out) == "new"
        finally:
            peer.kill()
            peer.communicate()
            await cache.aclose()
            await tier.aclose()
