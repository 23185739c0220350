"""Failing open: Redis killed or frozen, requests still succeed within the bound, and the outage is logged once.

Each test runs its own throwaway redis-server, since it kills or freezes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio as aioredis

from overdrive.cache import Cache, MemoryTier, RedisTier
from overdrive.exceptions import CacheTimeout, CacheUnavailable
from tests import services
from tests.cache.redis_helpers import paused, server_pid

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TIMEOUT = 0.05
# A request may wait out the L2 read, the listener's first subscription and the lease: a few timeouts, never more.
BOUND = 1.0


@pytest.fixture
def own_redis() -> Iterator[str]:
    with services.redis_server() as url:
        yield url


@pytest.fixture
async def cache(own_redis: str) -> AsyncIterator[Cache]:
    tier = RedisTier.from_url(own_redis, prefix="faults:", timeout=TIMEOUT)
    cache = Cache(MemoryTier(100), tier)
    yield cache
    await cache.aclose()
    await tier.aclose()


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "L2 cache tier failed" in r.getMessage()]


async def load(value: str) -> str:
    return value


def loader(value: str) -> Callable[[], Awaitable[str]]:
    return lambda: load(value)


class TestRedisDown:
    async def test_requests_succeed_and_the_outage_is_logged_once(
        self, cache: Cache, own_redis: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        await cache.set("warm", "v")  # connections and the listener are up before the kill
        os.kill(server_pid(own_redis), signal.SIGKILL)
        caplog.set_level(logging.WARNING, "overdrive.cache")
        for i in range(50):
            started = time.monotonic()
            assert await cache.get_or_load(f"k{i}", loader(f"v{i}")) == f"v{i}"
            assert time.monotonic() - started < BOUND
        await cache.set("new", 1)
        await cache.invalidate_tags("t")
        assert cache.metrics.l2_outages == 1
        assert cache.metrics.l2_errors >= 1
        assert len(outage_warnings(caplog)) == 1

    async def test_the_tier_itself_raises_cache_unavailable(self, own_redis: str) -> None:
        tier = RedisTier.from_url(own_redis, prefix="faults:", timeout=TIMEOUT)
        os.kill(server_pid(own_redis), signal.SIGKILL)
        try:
            with pytest.raises(CacheUnavailable, match="cannot be reached"):
                await tier.get("k")
        finally:
            await tier.aclose()


class TestRedisFrozen:
    async def test_a_frozen_redis_costs_one_bounded_wait_then_is_skipped(
        self, cache: Cache, own_redis: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        await cache.set("warm", "v")  # connections and the listener are up before the freeze
        caplog.set_level(logging.WARNING, "overdrive.cache")
        with paused(server_pid(own_redis)):
            started = time.monotonic()
            assert await cache.get_or_load("cold", lambda: load("fresh")) == "fresh"
            assert time.monotonic() - started < BOUND
            started = time.monotonic()
            for i in range(100):
                assert await cache.get_or_load(f"k{i}", loader(f"v{i}")) == f"v{i}"
            assert time.monotonic() - started < BOUND  # skipped during the backoff, not 100 timeouts
        assert cache.metrics.l2_outages == 1
        assert len(outage_warnings(caplog)) == 1

    async def test_the_outage_ends_when_redis_answers_again(
        self, cache: Cache, own_redis: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        await cache.set("warm", "v")
        cache.outage.backoff = 0.05
        caplog.set_level(logging.WARNING, "overdrive.cache")
        with paused(server_pid(own_redis)):
            assert await cache.get_or_load("a", lambda: load("1")) == "1"
        await asyncio.sleep(0.1)  # past the backoff: the next call probes Redis
        await cache.set("b", "2")
        assert not cache.outage.down
        assert any("answers again" in r.getMessage() for r in caplog.records)
        other = Cache(None, cache.l2)
        try:
            assert await other.get("b") == "2"  # written to Redis once it was back
        finally:
            await other.aclose()

    async def test_the_tier_itself_raises_cache_timeout(self, own_redis: str) -> None:
        tier = RedisTier.from_url(own_redis, prefix="faults:", timeout=TIMEOUT)
        try:
            await tier.get("k")  # connect first, so the freeze hits a command
            with paused(server_pid(own_redis)), pytest.raises(CacheTimeout, match="did not answer within 50 ms"):
                await tier.get("k")
        finally:
            await tier.aclose()


class TestConcurrencyBound:
    async def test_a_call_waits_for_a_slot_within_the_bound_and_then_runs(self, own_redis: str) -> None:
        tier = RedisTier.from_url(own_redis, prefix="slots:", timeout=TIMEOUT, max_connections=1)
        await tier._slots.acquire()  # every slot taken, as by a call in flight
        started = time.perf_counter()
        with pytest.raises(CacheTimeout, match="No Redis connection came free"):
            await tier.run(tier.client.get("x"))  # the unawaited call is closed: no RuntimeWarning (an error here)
        assert time.perf_counter() - started < BOUND
        asyncio.get_running_loop().call_later(TIMEOUT / 5, tier._slots.release)
        assert await tier.run(tier.client.get("x")) is None  # the slot comes free within the bound
        await tier.aclose()

    async def test_a_client_without_socket_timeouts_is_bounded_per_call(self, own_redis: str) -> None:
        client = aioredis.Redis.from_url(own_redis)
        tier = RedisTier(client, prefix="unbounded:", timeout=TIMEOUT)
        assert not tier._client_bounded
        pid = server_pid(own_redis)
        await tier.run(client.ping())
        with paused(pid):
            started = time.perf_counter()
            with pytest.raises(CacheTimeout):
                await tier.get("anything")
            assert time.perf_counter() - started < BOUND
        await client.aclose()

    def test_max_concurrency_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_concurrency"):
            RedisTier(aioredis.Redis(), max_concurrency=0)
