"""Cache: plain reads and writes, read-through, namespaces and versions, L2 promotion, bad input, metrics."""

from __future__ import annotations

import random

import pytest

from overdrive.cache import Cache, Entry, Freshness, MemoryTier, PickleCodec
from overdrive.exceptions import ConfigurationError, SerializationError
from overdrive.testing import FakeClock
from tests.cache.conftest import Loader

pytestmark = pytest.mark.anyio


class TestGetSetDelete:
    async def test_a_set_value_is_got_until_its_ttl(self, cache: Cache, clock: FakeClock) -> None:
        await cache.set("k", {"a": 1}, ttl=10)
        assert await cache.get("k") == {"a": 1}
        clock.advance(9.9)
        assert await cache.get("k") == {"a": 1}
        clock.advance(0.2)
        assert await cache.get("k", "gone") == "gone"

    async def test_delete_removes_from_every_tier(self, two_level: Cache) -> None:
        await two_level.set("k", 1)
        assert await two_level.delete("k") is True
        assert await two_level.get("k") is None
        assert await two_level.delete("k") is False

    async def test_none_is_a_cacheable_value(self, cache: Cache) -> None:
        loader = Loader(None)
        assert await cache.get_or_load("k", loader) is None
        assert await cache.get_or_load("k", loader) is None
        assert loader.calls == 1

    async def test_clear_empties_the_tiers(self, two_level: Cache) -> None:
        await two_level.set("k", 1)
        await two_level.clear()
        assert await two_level.get("k") is None


class TestKeys:
    async def test_namespace_and_version_prefix_keys(self, clock: FakeClock) -> None:
        tier = MemoryTier(10, clock=clock)
        cache = Cache(tier, clock=clock, namespace="shop", version="v2")
        await cache.set("k", 1)
        assert cache.key("k") == "shop:v2:k"
        assert "shop:v2:k" in tier

    async def test_a_new_version_retires_old_entries(self, clock: FakeClock) -> None:
        l2 = MemoryTier(10, clock=clock)
        old = Cache(None, l2, clock=clock, version="v1")
        await old.set("k", "old")
        new = Cache(None, l2, clock=clock, version="v2")
        assert await new.get("k") is None
        assert await old.get("k") == "old"


class TestReadThrough:
    async def test_a_miss_loads_and_a_hit_does_not(self, cache: Cache) -> None:
        loader = Loader(42)
        assert await cache.get_or_load("k", loader) == 42
        assert await cache.get_or_load("k", loader) == 42
        assert loader.calls == 1
        assert (cache.metrics.misses, cache.metrics.hits, cache.metrics.loads) == (1, 1, 1)

    async def test_the_value_reloads_after_expiry(self, cache: Cache, clock: FakeClock) -> None:
        loader = Loader(1)
        await cache.get_or_load("k", loader, ttl=5)
        clock.advance(5)
        loader.value = 2
        assert await cache.get_or_load("k", loader, ttl=5) == 2
        assert loader.calls == 2

    async def test_loader_errors_propagate_and_are_not_cached(self, cache: Cache) -> None:
        loader = Loader()
        loader.error = RuntimeError("down")
        with pytest.raises(RuntimeError, match="down"):
            await cache.get_or_load("k", loader)
        loader.error = None
        assert await cache.get_or_load("k", loader) == "v"
        assert cache.metrics.load_errors == 1

    async def test_loader_latency_is_measured_on_the_clock(self, cache: Cache, clock: FakeClock) -> None:
        async def slow() -> int:
            clock.advance(0.25)
            return 1

        await cache.get_or_load("k", slow)
        assert cache.metrics.load_seconds == pytest.approx(0.25)
        assert cache.metrics.load_seconds_max == pytest.approx(0.25)


class TestTwoLevels:
    async def test_an_l2_hit_is_promoted_to_l1(self, two_level: Cache) -> None:
        assert two_level.l1 is not None
        assert two_level.l2 is not None
        await two_level.set("k", [1, 2])
        await two_level.l1.clear()
        assert await two_level.get("k") == [1, 2]
        assert "k" in two_level.l1

    async def test_l2_holds_marked_codec_bytes(self, two_level: Cache) -> None:
        assert two_level.l2 is not None
        await two_level.set("k", {"a": 1})
        stored = await two_level.l2.get("k")
        assert stored is not None
        assert isinstance(stored.value, bytes)
        assert stored.value.startswith(b"OM1\x00")

    async def test_an_unserializable_value_fails_at_set_time(self, two_level: Cache) -> None:
        with pytest.raises(SerializationError, match="Cannot cache a value of type object"):
            await two_level.set("k", object())
        assert await two_level.get("k") is None

    @pytest.mark.parametrize("payload", [b"garbage", b"OM1\x00\xc1", b"OP1\x00" + b"x" * 40])
    async def test_a_corrupt_or_foreign_entry_is_a_miss(
        self, two_level: Cache, clock: FakeClock, payload: bytes
    ) -> None:
        assert two_level.l2 is not None
        await two_level.l2.set("k", Entry(payload, fresh_until=clock() + 60))
        loader = Loader("fresh")
        assert await two_level.get_or_load("k", loader) == "fresh"
        assert two_level.metrics.corrupt == 1
        assert loader.calls == 1

    async def test_decode_as_rebuilds_the_declared_type(self, two_level: Cache) -> None:
        assert two_level.l1 is not None
        await two_level.set("k", (1, 2))
        await two_level.l1.clear()
        assert await two_level.get("k") == [1, 2]
        await two_level.l1.clear()
        assert await two_level.get("k", decode_as=tuple[int, int]) == (1, 2)

    async def test_pickle_codec_round_trips_through_l2(self, clock: FakeClock) -> None:
        l1, l2 = MemoryTier(10, clock=clock), MemoryTier(10, clock=clock)
        cache = Cache(l1, l2, clock=clock, codec=PickleCodec(secret=b"s" * 32))
        await cache.set("k", {1, 2})
        await l1.clear()
        assert await cache.get("k") == {1, 2}


class TestConfiguration:
    def test_without_tiers_the_cache_gets_a_memory_tier(self) -> None:
        assert isinstance(Cache().l1, MemoryTier)

    def test_a_default_clock_tier_adopts_the_cache_clock(self, clock: FakeClock) -> None:
        tier = MemoryTier(10)
        Cache(tier, clock=clock)
        assert tier.clock is clock

    def test_different_clocks_are_refused(self, clock: FakeClock) -> None:
        with pytest.raises(ConfigurationError, match="different clocks"):
            Cache(MemoryTier(10, clock=FakeClock()), clock=clock)

    def test_stats_include_evictions(self, clock: FakeClock) -> None:
        cache = Cache(MemoryTier(1, clock=clock), clock=clock, rng=random.Random(0))
        assert cache.stats()["evictions"] == 0
        assert set(cache.stats()) >= {"hits", "misses", "stale_served", "coalesced_waits", "load_seconds"}

    async def test_evictions_are_counted(self, clock: FakeClock) -> None:
        cache = Cache(MemoryTier(2, clock=clock), clock=clock, freshness=Freshness(jitter=0))
        for i in range(5):
            await cache.set(str(i), i)
        assert cache.stats()["evictions"] == 3
