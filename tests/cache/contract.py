"""The `Tier` contract: every tier (memory now, Redis later) runs these tests through a `tier` fixture.

A tier's test module subclasses `TierContract` and provides `tier` (an empty tier) and `clock` (the clock its
entries' deadlines are measured on, advanced with `advance`).
"""

from __future__ import annotations

import pytest

from overdrive.cache import Entry, Tier
from overdrive.testing import FakeClock


def entry(value: object, clock: FakeClock, ttl: float = 10, **fields: object) -> Entry:
    return Entry(value, fresh_until=clock() + ttl, **fields)  # type: ignore[arg-type]


@pytest.mark.anyio
class TierContract:
    """Behaviour every `Tier` shares."""

    async def test_it_satisfies_the_protocol(self, tier: Tier) -> None:
        assert isinstance(tier, Tier)

    async def test_a_missing_key_is_none(self, tier: Tier) -> None:
        assert await tier.get("absent") is None

    async def test_set_then_get_returns_the_value_and_metadata(self, tier: Tier, clock: FakeClock) -> None:
        await tier.set("k", entry(b"payload", clock, tags=("a", "b"), gens=(1, 2)))
        got = await tier.get("k")
        assert got is not None
        assert (got.value, got.tags, got.gens) == (b"payload", ("a", "b"), (1, 2))
        assert got.fresh_until == clock() + 10

    async def test_set_replaces(self, tier: Tier, clock: FakeClock) -> None:
        await tier.set("k", entry(b"one", clock))
        await tier.set("k", entry(b"two", clock))
        got = await tier.get("k")
        assert got is not None
        assert got.value == b"two"

    async def test_an_expired_entry_is_never_returned(self, tier: Tier, clock: FakeClock) -> None:
        await tier.set("k", entry(b"v", clock, ttl=5, expires_at=clock() + 8))
        clock.advance(7.9)
        assert await tier.get("k") is not None
        clock.advance(0.2)
        assert await tier.get("k") is None

    async def test_delete_says_whether_there_was_an_entry(self, tier: Tier, clock: FakeClock) -> None:
        await tier.set("k", entry(b"v", clock))
        assert await tier.delete("k") is True
        assert await tier.delete("k") is False
        assert await tier.get("k") is None

    async def test_clear_removes_every_entry_but_keeps_generations(self, tier: Tier, clock: FakeClock) -> None:
        await tier.bump_generations(("t",))
        for key in ("a", "b", "c"):
            await tier.set(key, entry(b"v", clock))
        await tier.clear()
        assert [await tier.get(key) for key in ("a", "b", "c")] == [None, None, None]
        assert await tier.get_generations(("t",)) == (1,)

    async def test_generations_start_at_zero_and_count_bumps(self, tier: Tier) -> None:
        assert await tier.get_generations(("a", "b")) == (0, 0)
        await tier.bump_generations(("a",))
        await tier.bump_generations(("a", "c"))
        assert await tier.get_generations(("a", "b", "c")) == (2, 0, 1)

    async def test_bumping_a_tag_does_not_touch_entries(self, tier: Tier, clock: FakeClock) -> None:
        """Invalidation is the reader's comparison of generations; the entries stay until they expire."""
        await tier.set("k", entry(b"v", clock, tags=("t",), gens=(0,)))
        await tier.bump_generations(("t",))
        got = await tier.get("k")
        assert got is not None
        assert got.gens != await tier.get_generations(got.tags)
