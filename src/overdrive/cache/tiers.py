"""Cache tiers: the `Tier` protocol every storage level implements, and the bounded in-process `MemoryTier`."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from overdrive.cache._entry import Entry

__all__ = ["MemoryTier", "Tier"]


@runtime_checkable
class Tier(Protocol):
    """One storage level of a `Cache` (the memory tier, Redis, ...).

    Contract (checked for every tier by one shared test suite, tests/cache/contract.py):

    * `get` returns the entry stored under `key`, or None when there is none or its `expires_at` has passed.
      A tier may drop entries early (eviction) but never returns an expired one.
    * `set` stores the entry under `key`, replacing any previous one, until its `expires_at`.
      A tier that stores bytes receives entries whose `value` is already codec bytes.
    * `delete` removes the entry and says whether there was one; `clear` removes every entry.
    * Tag generations are counters, one per tag, starting at 0. `get_generations` reads them in the order given;
      `bump_generations` adds one to each. Bumping is O(number of tags): entries are never visited. A reader
      compares an entry's recorded `gens` with the current ones, so a bump invalidates every entry carrying the tag.
    """

    async def get(self, key: str) -> Entry | None:
        """The live entry under `key`, or None."""
        ...

    async def set(self, key: str, entry: Entry) -> None:
        """Store `entry` under `key` until its `expires_at`."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the entry under `key`; True if there was one."""
        ...

    async def clear(self) -> None:
        """Remove every entry (tag generations are kept, so no entry written before can come back)."""
        ...

    async def get_generations(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """The current generation of each tag, in order."""
        ...

    async def bump_generations(self, tags: tuple[str, ...]) -> None:
        """Advance the generation of each tag, invalidating every entry that carries one of them."""
        ...


class MemoryTier:
    """A bounded in-process tier with least-recently-used eviction.

    It stores live objects: a hit returns the very object that was stored, with no copy and no decoding, so callers
    must not mutate cached values. Besides the async `Tier` methods it offers synchronous ones (`peek`, `lookup`,
    `store`, `discard`, `generations`, `bump`), which the `Cache` uses so an L1 hit runs no coroutine.

    Eviction is LRU on an `OrderedDict` (a C implementation): a hit costs one `move_to_end`. Frequency-based
    admission (W-TinyLFU) would count every hit in a sketch, which costs more per hit in Python than it saves at
    the hit ratios a bounded L1 in front of Redis sees; the bound is about memory, Redis holds the long tail.

    Args:
        max_entries: The most entries kept; the least recently used one is evicted past it.
        clock: The time source for expiry, in seconds (`time.time` by default, so absolute deadlines agree with
            other processes sharing an L2 tier).

    Attributes:
        evictions: Entries dropped to respect `max_entries`.
        epoch: Incremented on every tag bump; an entry checked at the current epoch needs no generation lookup.

    """

    def __init__(self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            msg = f"A memory tier must hold at least one entry; got max_entries={max_entries}."
            raise ConfigurationError(msg)
        self.max_entries = max_entries
        self.clock = clock
        self.evictions = 0
        self.epoch = 0
        self._data: OrderedDict[str, Entry] = OrderedDict()
        self._gens: dict[str, int] = {}
        self._get = self._data.get
        self._touch = self._data.move_to_end

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # -- synchronous API (the Cache's hot path) ------------------------------------------------------------------

    def peek(self, key: str) -> Entry | None:
        """The entry under `key` marked as recently used, without an expiry check (the caller checks deadlines)."""
        entry = self._get(key)
        if entry is not None:
            self._touch(key)
        return entry

    def lookup(self, key: str) -> Entry | None:
        """The live entry under `key`, or None; an expired entry is removed."""
        entry = self._get(key)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            del self._data[key]
            return None
        self._touch(key)
        return entry

    def store(self, key: str, entry: Entry) -> None:
        """Store `entry` under `key` as the most recently used, evicting the least recently used past the bound."""
        data = self._data
        data[key] = entry
        self._touch(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evictions += 1

    def discard(self, key: str) -> bool:
        """Remove the entry under `key`; True if there was one."""
        return self._data.pop(key, None) is not None

    def generations(self, tags: Iterable[str]) -> tuple[int, ...]:
        """The current generation of each tag."""
        gens = self._gens
        return tuple(gens.get(tag, 0) for tag in tags)

    def bump(self, tags: Iterable[str]) -> None:
        """Advance the generation of each tag: O(number of tags), whatever the number of entries carrying them."""
        gens = self._gens
        for tag in tags:
            gens[tag] = gens.get(tag, 0) + 1
        self.epoch += 1

    def is_current(self, entry: Entry) -> bool:
        """Whether no tag of `entry` was bumped since it was loaded (remembered until the next bump)."""
        if entry.checked == self.epoch:
            return True
        if entry.tags and self.generations(entry.tags) != entry.gens:
            return False
        entry.checked = self.epoch
        return True

    # -- the Tier protocol ---------------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        """The live entry under `key`, or None."""
        return self.lookup(key)

    async def set(self, key: str, entry: Entry) -> None:
        """Store `entry` under `key`."""
        self.store(key, entry)

    async def delete(self, key: str) -> bool:
        """Remove the entry under `key`; True if there was one."""
        return self.discard(key)

    async def clear(self) -> None:
        """Remove every entry; tag generations are kept."""
        self._data.clear()

    async def get_generations(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """The current generation of each tag."""
        return self.generations(tags)

    async def bump_generations(self, tags: tuple[str, ...]) -> None:
        """Advance the generation of each tag."""
        self.bump(tags)
