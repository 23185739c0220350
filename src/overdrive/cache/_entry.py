"""One cached value with its freshness deadlines and the tag generations it was written under."""

from __future__ import annotations

import math

__all__ = ["NEVER_FAST", "Entry"]

# An entry whose `refresh_at` is minus infinity never passes the hit fast path; negative-cached errors use it
# so the fast path need not test for them.
NEVER_FAST = -math.inf


class Entry:
    """A cached value and its deadlines, all absolute times on the cache's clock.

    The deadlines are ordered: `refresh_at <= fresh_until <= stale_until <= expires_at`.

    * before `refresh_at`: a plain hit (the only case the fast path serves);
    * before `fresh_until`: a hit that also starts an early background refresh (probabilistic early refresh);
    * before `stale_until`: stale-while-revalidate, the stale value is served and refreshed once in the background;
    * before `expires_at`: stale-if-error, the caller reloads, and gets the stale value only if the loader fails;
    * from `expires_at`: gone.

    Attributes:
        value: The value: a live object in the memory tier, codec bytes in a tier that stores bytes.
        tags: The tags the value carries.
        gens: The generation of each tag when the value's load started; a read compares them with the current ones.
        checked: The memory tier's tag epoch at which `gens` were last found current (-1: never checked).
        delta: How long the load took, in seconds (scales the probabilistic early refresh).
        error: For a negative-cached exception, the exception to raise again; otherwise None.

    """

    __slots__ = (
        "checked",
        "delta",
        "error",
        "expires_at",
        "fresh_until",
        "gens",
        "refresh_at",
        "stale_until",
        "tags",
        "value",
    )

    def __init__(
        self,
        value: object,
        *,
        fresh_until: float,
        refresh_at: float | None = None,
        stale_until: float | None = None,
        expires_at: float | None = None,
        tags: tuple[str, ...] = (),
        gens: tuple[int, ...] = (),
        delta: float = 0.0,
        error: BaseException | None = None,
    ) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.refresh_at = fresh_until if refresh_at is None else refresh_at
        self.stale_until = fresh_until if stale_until is None else stale_until
        self.expires_at = self.stale_until if expires_at is None else expires_at
        self.tags = tags
        self.gens = gens
        self.checked = -1
        self.delta = delta
        self.error = error

    def replace_value(self, value: object, gens: tuple[int, ...]) -> Entry:
        """A copy holding `value` and tag generations `gens` (moving an entry between a live and a bytes tier)."""
        return Entry(
            value,
            fresh_until=self.fresh_until,
            refresh_at=self.refresh_at,
            stale_until=self.stale_until,
            expires_at=self.expires_at,
            tags=self.tags,
            gens=gens,
            delta=self.delta,
            error=self.error,
        )

    def __repr__(self) -> str:
        return f"Entry({self.value!r}, fresh_until={self.fresh_until}, expires_at={self.expires_at}, tags={self.tags})"
