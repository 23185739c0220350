"""A count-min frequency sketch with periodic halving: TinyLFU's memory of how often each key was asked for.

Four counters per key (bytes saturating at 15) in one table of ``4 x capacity`` rounded up to a power of two; the
four positions are four 16-bit slices of the key's `hash()` (SipHash for `str`, cached by the string, so the hit
path hashes nothing). After ``10 x capacity`` increments every counter is halved (one `bytes.translate` in C), so
old popularity fades.
"""

from __future__ import annotations

__all__ = ["FrequencySketch"]

_SATURATED = 15
_COUNTERS_PER_ENTRY = 16
_HALVE = bytes(b >> 1 for b in range(256))


class FrequencySketch:
    """Estimates, within a small overcount, how often each key was seen recently.

    Args:
        capacity: the number of entries of the cache it serves (sizes the table and the aging period).

    """

    __slots__ = ("_additions", "_mask", "_period", "_table")

    def __init__(self, capacity: int) -> None:
        width = 16
        while width < _COUNTERS_PER_ENTRY * capacity:
            width *= 2
        self._table = bytearray(width)
        self._mask = width - 1
        self._additions = 0
        self._period = 10 * max(1, capacity)

    def increment(self, key: object) -> None:
        """Count one sighting of `key`."""
        h = hash(key)
        table, mask = self._table, self._mask
        # Unrolled: a loop over a tuple of the four positions costs about twice as much here.
        i = h & mask
        if table[i] < _SATURATED:
            table[i] += 1
        i = (h >> 16) & mask
        if table[i] < _SATURATED:
            table[i] += 1
        i = (h >> 32) & mask
        if table[i] < _SATURATED:
            table[i] += 1
        i = (h >> 48) & mask
        if table[i] < _SATURATED:
            table[i] += 1
        self._additions += 1
        if self._additions >= self._period:
            self._table = bytearray(table.translate(_HALVE))
            self._additions //= 2

    def estimate(self, key: object) -> int:
        """How often `key` was seen (never less than the truth since the last halving, up to 15)."""
        h = hash(key)
        table, mask = self._table, self._mask
        return min(table[h & mask], table[(h >> 16) & mask], table[(h >> 32) & mask], table[(h >> 48) & mask])
