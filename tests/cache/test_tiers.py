"""MemoryTier: the shared Tier contract, plus its bound, LRU eviction and synchronous API."""

from __future__ import annotations

import random

import pytest

from overdrive.cache import EvictionPolicy, MemoryTier
from overdrive.cache._sketch import FrequencySketch
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock
from tests.cache.contract import TierContract, entry


class TestMemoryTierContract(TierContract):
    @pytest.fixture(params=["lru", "w-tinylfu"])
    def tier(self, clock: FakeClock, request: pytest.FixtureRequest) -> MemoryTier:
        return MemoryTier(100, clock=clock, policy=request.param)


class TestEviction:
    def test_the_bound_holds_and_evictions_are_counted(self, clock: FakeClock) -> None:
        tier = MemoryTier(10, clock=clock)
        for i in range(25):
            tier.store(f"k{i}", entry(i, clock))
        assert len(tier) == 10
        assert tier.evictions == 15
        assert [f"k{i}" in tier for i in range(15, 25)] == [True] * 10

    def test_the_least_recently_used_entry_goes_first(self, clock: FakeClock) -> None:
        tier = MemoryTier(3, clock=clock)
        for key in "abc":
            tier.store(key, entry(key, clock))
        assert tier.peek("a") is not None  # a is now the most recently used
        tier.store("d", entry("d", clock))
        assert "b" not in tier
        assert all(key in tier for key in "acd")

    def test_a_bound_below_one_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="at least one entry"):
            MemoryTier(0)


class TestSynchronousAPI:
    def test_lookup_drops_expired_entries_and_peek_does_not_check(self, clock: FakeClock) -> None:
        tier = MemoryTier(10, clock=clock)
        tier.store("k", entry("v", clock, ttl=1))
        clock.advance(2)
        assert tier.peek("k") is not None
        assert tier.lookup("k") is None
        assert "k" not in tier

    def test_hits_return_the_stored_object_itself(self, clock: FakeClock) -> None:
        tier = MemoryTier(10, clock=clock)
        value = {"big": list(range(100))}
        tier.store("k", entry(value, clock))
        found = tier.lookup("k")
        assert found is not None
        assert found.value is value

    def test_is_current_follows_tag_bumps(self, clock: FakeClock) -> None:
        tier = MemoryTier(10, clock=clock)
        tagged = entry("v", clock, tags=("t",), gens=tier.generations(("t",)))
        assert tier.is_current(tagged)
        tier.bump(("other",))
        assert tier.is_current(tagged)
        tier.bump(("t",))
        assert not tier.is_current(tagged)


class TestWTinyLFU:
    def test_the_bound_holds_under_churn_and_every_key_is_in_exactly_one_segment(self, clock: FakeClock) -> None:
        tier = MemoryTier(200, clock=clock, policy="w-tinylfu")
        rng = random.Random(5)
        for step in range(20_000):
            key = f"k{int(rng.paretovariate(1.0)) % 2000}"
            if tier.peek(key) is None:
                tier.store(key, entry(b"v", clock))
            if step % 997 == 0:
                tier.discard(f"k{rng.randrange(50)}")
            assert len(tier) <= 200
        policy = tier._tinylfu
        segments = [set(policy.window), set(policy.probation), set(policy.protected)]
        assert sum(map(len, segments)) == len(tier)
        assert set().union(*segments) == set(tier._data)
        assert len(policy.window) <= policy.window_size
        assert len(policy.protected) <= policy.protected_size
        assert tier.evictions > 0

    def test_frequent_keys_survive_a_scan_that_would_flush_lru(self, clock: FakeClock) -> None:
        def survivors(policy: EvictionPolicy) -> int:
            tier = MemoryTier(100, clock=clock, policy=policy)
            hot = [f"hot{i}" for i in range(50)]
            for _ in range(20):  # the hot keys are asked for again and again
                for key in hot:
                    if tier.peek(key) is None:
                        tier.store(key, entry(b"v", clock))
            for i in range(1000):  # then a one-off scan of new keys
                key = f"scan{i}"
                if tier.peek(key) is None:
                    tier.store(key, entry(b"v", clock))
            return sum(key in tier for key in hot)

        assert survivors("lru") == 0
        assert survivors("w-tinylfu") >= 45  # a scan key whose sketch counters all collide may still win one slot

    def test_a_one_entry_tier_still_works(self, clock: FakeClock) -> None:
        tier = MemoryTier(1, clock=clock, policy="w-tinylfu")
        tier.store("a", entry(b"1", clock))
        tier.store("b", entry(b"2", clock))
        assert len(tier) == 1
        assert "b" in tier

    @pytest.mark.anyio
    async def test_clear_empties_every_segment(self, clock: FakeClock) -> None:
        tier = MemoryTier(50, clock=clock, policy="w-tinylfu")
        for i in range(80):
            tier.store(f"k{i}", entry(b"v", clock))
        await tier.clear()
        policy = tier._tinylfu
        assert len(tier) == len(policy.window) == len(policy.probation) == len(policy.protected) == 0
        assert not tier.discard("k1")

    def test_an_unknown_policy_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="eviction policy"):
            MemoryTier(10, policy="fifo")  # type: ignore[arg-type]


class TestFrequencySketch:
    def test_estimates_never_undercount_and_fade_with_age(self) -> None:
        sketch = FrequencySketch(100)
        for _ in range(14):
            sketch.increment("popular")
        sketch.increment("rare")
        assert sketch.estimate("popular") >= 14
        assert sketch.estimate("rare") >= 1
        assert sketch.estimate("never") <= 1  # collisions may add a little, never much with a mostly empty table
        for _ in range(1000 - 15):  # the aging period is 10 x capacity: the 1000th increment halves every counter
            sketch.increment("other")
        assert sketch.estimate("popular") == 7

    def test_counters_saturate(self) -> None:
        sketch = FrequencySketch(10)
        for _ in range(50):
            sketch.increment("k")
        assert sketch.estimate("k") == 15
