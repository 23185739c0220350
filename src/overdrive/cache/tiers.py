"""Cache tiers: the `Tier` protocol every storage level implements, and the bounded in-process `MemoryTier`."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from overdrive.cache._sketch import FrequencySketch
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from overdrive.cache._entry import Entry

__all__ = ["EvictionPolicy", "MemoryTier", "Tier"]

EvictionPolicy = Literal["lru", "w-tinylfu"]
_WINDOW_SHARE = 0.01  # W-TinyLFU: the admission window holds 1% of the entries
_PROTECTED_SHARE = 0.8  # and the main area keeps 80% of its entries in the protected segment


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
    """A bounded in-process tier: least-recently-used eviction, or W-TinyLFU.

    It stores live objects: a hit returns the very object that was stored, with no copy and no decoding, so callers
    must not mutate cached values. Besides the async `Tier` methods it offers synchronous ones (`peek`, `lookup`,
    `store`, `discard`, `generations`, `bump`), which the `Cache` uses so an L1 hit runs no coroutine.

    Policies:

    * ``lru``: an `OrderedDict` (a C implementation); a hit costs one `move_to_end`.
    * ``w-tinylfu``: a small LRU admission window (1% of the entries) in front of a segmented LRU (probation and
      protected, 20/80), with a frequency sketch deciding, when the main area is full, whether the key leaving the
      window is worth more than the main area's next victim. Every lookup (hit or miss) is counted in the sketch,
      about 0.3 µs more per hit, which buys higher hit ratios on skewed traffic and resistance to one-off scans
      (measured in BENCHMARKS.md, "Cache: eviction policy").

    Args:
        max_entries: The most entries kept; past it the policy evicts one.
        clock: The time source for expiry, in seconds (`time.time` by default, so absolute deadlines agree with
            other processes sharing an L2 tier).
        policy: ``lru`` (default) or ``w-tinylfu``.

    Attributes:
        evictions: Entries dropped to respect `max_entries` (for W-TinyLFU, candidates refused admission too).
        epoch: Incremented on every tag bump; an entry checked at the current epoch needs no generation lookup.

    """

    def __init__(
        self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.time, policy: EvictionPolicy = "lru"
    ) -> None:
        if max_entries < 1:
            msg = f"A memory tier must hold at least one entry; got max_entries={max_entries}."
            raise ConfigurationError(msg)
        if policy not in ("lru", "w-tinylfu"):
            msg = f"Unknown eviction policy {policy!r}; choose 'lru' or 'w-tinylfu'."
            raise ConfigurationError(msg)
        self.max_entries = max_entries
        self.policy = policy
        self.clock = clock
        self.evictions = 0
        self.epoch = 0
        self._data: OrderedDict[str, Entry] = OrderedDict()
        self._gens: dict[str, int] = {}
        self._get = self._data.get
        self._touch = self._data.move_to_end
        if policy == "w-tinylfu":
            self._tinylfu = _WTinyLFU(max_entries)
            self.peek = self._peek_counted  # type: ignore[method-assign]
            self.store = self._store_admitted  # type: ignore[method-assign]
            self.discard = self._discard_segmented  # type: ignore[method-assign]

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
        entry = self.peek(key)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            self.discard(key)
            return None
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

    # -- W-TinyLFU variants of peek / store / discard (bound in __init__) ----------------------------------------

    def _peek_counted(self, key: str) -> Entry | None:
        policy = self._tinylfu
        policy.sketch.increment(key)
        entry = self._get(key)
        if entry is not None:
            policy.touch(key)
        return entry

    def _store_admitted(self, key: str, entry: Entry) -> None:
        data = self._data
        if key in data:
            data[key] = entry
            self._tinylfu.touch(key)
            return
        data[key] = entry
        for victim in self._tinylfu.admit(key):
            del data[victim]
            self.evictions += 1

    def _discard_segmented(self, key: str) -> bool:
        if self._data.pop(key, None) is None:
            return False
        self._tinylfu.forget(key)
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
        """Remove every entry; tag generations are kept (and so is the frequency sketch's memory)."""
        self._data.clear()
        if self.policy == "w-tinylfu":
            self._tinylfu.clear()

    async def get_generations(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """The current generation of each tag."""
        return self.generations(tags)

    async def bump_generations(self, tags: tuple[str, ...]) -> None:
        """Advance the generation of each tag."""
        self.bump(tags)


class _WTinyLFU:
    """The segments and the sketch of W-TinyLFU; `MemoryTier` keeps the entries, this keeps their order."""

    __slots__ = ("main_size", "probation", "protected", "protected_size", "sketch", "window", "window_size")

    def __init__(self, capacity: int) -> None:
        self.window_size = max(1, int(capacity * _WINDOW_SHARE))
        self.main_size = capacity - self.window_size
        self.protected_size = int(self.main_size * _PROTECTED_SHARE)
        self.window: OrderedDict[str, None] = OrderedDict()
        self.probation: OrderedDict[str, None] = OrderedDict()
        self.protected: OrderedDict[str, None] = OrderedDict()
        self.sketch = FrequencySketch(capacity)

    def touch(self, key: str) -> None:
        """A hit: refresh recency; a second hit in probation promotes the key to protected."""
        if key in self.window:
            self.window.move_to_end(key)
        elif key in self.protected:
            self.protected.move_to_end(key)
        elif key in self.probation:
            del self.probation[key]
            self.protected[key] = None
            if len(self.protected) > self.protected_size:
                demoted, _ = self.protected.popitem(last=False)
                self.probation[demoted] = None

    def admit(self, key: str) -> list[str]:
        """A new key enters the window; returns the keys to drop (the window's loser, or the main area's)."""
        self.window[key] = None
        if len(self.window) <= self.window_size:
            return []
        candidate, _ = self.window.popitem(last=False)
        if len(self.probation) + len(self.protected) < self.main_size:
            self.probation[candidate] = None
            return []
        if not self.main_size:
            return [candidate]
        segment = self.probation if self.probation else self.protected
        victim = next(iter(segment))
        if self.sketch.estimate(candidate) > self.sketch.estimate(victim):
            del segment[victim]
            self.probation[candidate] = None
            return [victim]
        return [candidate]

    def forget(self, key: str) -> None:
        """A key was removed from the tier."""
        for segment in (self.window, self.probation, self.protected):
            if segment.pop(key, 0) is None:
                return

    def clear(self) -> None:
        """Every key was removed."""
        self.window.clear()
        self.probation.clear()
        self.protected.clear()
