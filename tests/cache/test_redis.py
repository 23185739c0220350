"""RedisTier on a real Redis: the shared Tier contract, its stored layout, and a two-level Cache on top of it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from overdrive.cache import Cache, Entry, Freshness, MemoryTier, RedisTier
from overdrive.cache._layout import MARKER, pack, unpack
from overdrive.exceptions import ConfigurationError, SerializationError
from overdrive.testing import FakeClock
from tests.cache.conftest import Loader
from tests.cache.contract import TierContract, entry
from tests.cache.redis_helpers import purge, unique_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix()
    yield value
    purge(redis_url, value)


@pytest.fixture
async def tier(redis_url: str, prefix: str, clock: FakeClock) -> AsyncIterator[RedisTier]:
    tier = RedisTier.from_url(redis_url, prefix=prefix, clock=clock, timeout=1.0)
    yield tier
    await tier.aclose()


@pytest.fixture
async def cache(tier: RedisTier, clock: FakeClock) -> AsyncIterator[Cache]:
    cache = Cache(
        MemoryTier(100, clock=clock), tier, clock=clock, freshness=Freshness(ttl=60, jitter=0), rng=random.Random(1)
    )
    yield cache
    await cache.aclose()


class TestRedisTierContract(TierContract):
    """The contract every tier shares, on Redis (the `tier` fixture above)."""


class TestLayout:
    def test_an_entry_round_trips_with_its_deadlines_tags_and_generations(self) -> None:
        stored = Entry(b"OM1\x00x", fresh_until=10, refresh_at=9, stale_until=12, expires_at=15, delta=0.25)
        stored.tags, stored.gens = ("a", "ünï"), (3, 0)
        got = unpack(pack(stored))
        assert got is not None
        assert (got.value, got.tags, got.gens, got.delta) == (b"OM1\x00x", ("a", "ünï"), (3, 0), 0.25)
        assert (got.refresh_at, got.fresh_until, got.stale_until, got.expires_at) == (9, 10, 12, 15)

    @pytest.mark.parametrize("data", [b"", b"junk", b"OE2\x00" + bytes(60), MARKER + bytes(10)])
    def test_foreign_or_truncated_bytes_are_not_an_entry(self, data: bytes) -> None:
        assert unpack(data) is None

    def test_only_codec_bytes_are_stored(self) -> None:
        with pytest.raises(SerializationError, match="codec bytes"):
            pack(Entry({"live": "object"}, fresh_until=1))


class TestRedisTier:
    async def test_entries_expire_in_redis_too_a_grace_after_expires_at(
        self, tier: RedisTier, clock: FakeClock
    ) -> None:
        await tier.set("k", entry(b"v", clock, ttl=5))
        ttl_ms = await tier.client.pttl(tier.entry_key("k"))
        assert 5_000 < ttl_ms <= 6_000

    async def test_a_foreign_value_under_an_entry_key_is_a_miss(self, tier: RedisTier) -> None:
        await tier.client.set(tier.entry_key("k"), b"someone else's value")
        assert await tier.get("k") is None

    async def test_get_current_checks_generations_in_the_same_call(self, tier: RedisTier, clock: FakeClock) -> None:
        await tier.set("k", entry(b"v", clock, tags=("t", "u"), gens=(0, 0)))
        assert await tier.get_current("k", ("t", "u")) is not None
        await tier.bump_generations(("u",))
        assert await tier.get_current("k", ("t", "u")) is None

    async def test_get_current_with_other_tags_than_expected_reads_the_entrys_own(
        self, tier: RedisTier, clock: FakeClock
    ) -> None:
        await tier.set("k", entry(b"v", clock, tags=("t",), gens=(0,)))
        assert await tier.get_current("k", ("other",)) is not None
        await tier.bump_generations(("t",))
        assert await tier.get_current("k", ("other",)) is None

    async def test_clear_leaves_other_prefixes_alone(self, redis_url: str, tier: RedisTier, clock: FakeClock) -> None:
        other = RedisTier.from_url(redis_url, prefix=tier.prefix + "other:", clock=clock)
        try:
            await other.set("k", entry(b"v", clock))
            await tier.set("k", entry(b"v", clock))
            await tier.clear()
            assert await tier.get("k") is None
            assert await other.get("k") is not None
        finally:
            await other.clear()
            await other.aclose()

    def test_bad_settings_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="timeout > 0"):
            RedisTier(aioredis.Redis(), timeout=0)


class TestCacheOnRedis:
    async def test_a_value_set_by_one_cache_is_read_by_another(self, cache: Cache, tier: RedisTier) -> None:
        await cache.set("k", {"a": [1, 2]})
        other = Cache(None, tier, clock=tier.clock)
        try:
            assert await other.get("k") == {"a": [1, 2]}
        finally:
            await other.aclose()

    async def test_a_tag_invalidated_through_redis_misses_everywhere(self, cache: Cache, tier: RedisTier) -> None:
        loader = Loader("v1")
        assert await cache.get_or_load("k", loader, tags=("t",)) == "v1"
        other = Cache(None, tier, clock=tier.clock)
        try:
            assert await other.get_or_load("k", loader, tags=("t",)) == "v1"
            assert loader.calls == 1
            await other.invalidate_tags("t")
            loader.value = "v2"
            assert await other.get_or_load("k", loader, tags=("t",)) == "v2"
            assert loader.calls == 2
        finally:
            await other.aclose()

    async def test_a_corrupt_entry_is_a_miss_and_is_dropped(self, cache: Cache, tier: RedisTier) -> None:
        await cache.set("k", 1)
        raw = await tier.client.get(tier.entry_key("k"))
        assert isinstance(raw, bytes)
        stored = unpack(raw)
        assert stored is not None
        stored.value = b"OM1\x00\xc1"  # the marker, then a byte MessagePack never uses
        await tier.client.set(tier.entry_key("k"), pack(stored))
        assert cache.l1 is not None
        cache.l1.discard("k")
        assert await cache.get("k", "absent") == "absent"
        assert cache.metrics.corrupt == 1
        assert await tier.client.exists(tier.entry_key("k")) == 0

    async def test_the_decorator_decodes_to_the_declared_type(self, cache: Cache) -> None:
        calls = 0

        @cache.cached(ttl=30)
        async def pair(n: int) -> tuple[int, int]:
            nonlocal calls
            calls += 1
            return (n, n * 2)

        assert await pair(2) == (2, 4)
        assert cache.l1 is not None
        await cache.l1.clear()
        assert await pair(2) == (2, 4)
        assert calls == 1
