"""MemoryTier: the shared Tier contract, plus its bound, LRU eviction and synchronous API."""

from __future__ import annotations

import pytest

from overdrive.cache import MemoryTier
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock
from tests.cache.contract import TierContract, entry


class TestMemoryTierContract(TierContract):
    @pytest.fixture
    def tier(self, clock: FakeClock) -> MemoryTier:
        return MemoryTier(100, clock=clock)


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
