"""Tags as generation counters: invalidation is O(tags), and entries written before a bump are never served."""

from __future__ import annotations

import asyncio

import pytest

from overdrive.cache import Cache, MemoryTier
from overdrive.testing import FakeClock
from tests.cache.conftest import Loader

pytestmark = pytest.mark.anyio


class TestInvalidation:
    async def test_invalidating_a_tag_drops_every_entry_carrying_it(self, cache: Cache) -> None:
        for i in range(50):
            await cache.set(f"p{i}", i, tags=("products", f"product:{i}"))
        await cache.set("other", "x", tags=("users",))
        await cache.invalidate_tags("products")
        assert [await cache.get(f"p{i}") for i in range(50)] == [None] * 50
        assert await cache.get("other") == "x"

    async def test_a_bump_touches_no_entry(self, clock: FakeClock) -> None:
        """O(1) in the number of entries: the tier's entries are the same objects, untouched, after the bump."""
        tier = MemoryTier(10_000, clock=clock)
        cache = Cache(tier, clock=clock)
        for i in range(5_000):
            await cache.set(f"k{i}", i, tags=("all",))
        before = dict(tier._data)
        await cache.invalidate_tags("all")
        assert tier._data == before
        assert tier.generations(("all",)) == (1,)

    async def test_an_entry_rewritten_after_the_bump_is_served(self, cache: Cache) -> None:
        await cache.set("k", "old", tags=("t",))
        await cache.invalidate_tags("t")
        await cache.set("k", "new", tags=("t",))
        assert await cache.get("k") == "new"

    async def test_a_load_racing_an_invalidation_is_not_served(self, cache: Cache) -> None:
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "loaded-before-invalidation"

        caller = asyncio.create_task(cache.get_or_load("k", slow, tags=("t",)))
        await asyncio.sleep(0)
        await cache.invalidate_tags("t")
        release.set()
        assert await caller == "loaded-before-invalidation"
        assert await cache.get("k") is None

    async def test_invalidation_reaches_l2(self, two_level: Cache) -> None:
        assert two_level.l1 is not None
        await two_level.set("k", 1, tags=("t",))
        await two_level.invalidate_tags("t")
        await two_level.l1.clear()
        loader = Loader(2)
        assert await two_level.get_or_load("k", loader) == 2
