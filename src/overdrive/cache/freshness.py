"""How long cached values stay fresh, and what happens after: the `Freshness` policy and the entries it builds."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from overdrive.cache._entry import NEVER_FAST, Entry
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    import random

__all__ = ["Freshness"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Freshness:
    """A freshness policy: TTL, jitter, stale windows, negative caching and early refresh.

    Args:
        ttl: Seconds a value stays fresh.
        jitter: A fraction of `ttl` taken off at random (uniformly) per write, so keys written together do not
            expire together: the real TTL lies in `[ttl * (1 - jitter), ttl]`, never above `ttl`.
        stale_ttl: Stale-while-revalidate: for this many seconds after a value goes stale it is still served,
            while one background load refreshes it.
        stale_if_error: For this many seconds after a value goes stale, a caller whose reload fails gets the
            stale value instead of the error.
        none_ttl: TTL for a None result (negative caching); None means the same as `ttl`, 0 means None is not
            cached.
        error_types: Exception types whose raising is cached (negative caching), for `error_ttl` seconds: callers
            get the same exception again without calling the loader.
        error_ttl: TTL of a cached exception.
        early_refresh: The XFetch beta (1.0 is the paper's choice; 0 turns it off). A value is refreshed in the
            background a little before it goes stale, earlier the longer its load took. The random draw is made
            once per write, so a hit still costs one comparison.

    """

    ttl: float = 300.0
    jitter: float = 0.1
    stale_ttl: float = 0.0
    stale_if_error: float = 0.0
    none_ttl: float | None = None
    error_types: tuple[type[BaseException], ...] = ()
    error_ttl: float = 0.0
    early_refresh: float = 0.0

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            msg = f"A cache TTL must be positive; got ttl={self.ttl}."
            raise ConfigurationError(msg)
        if not 0 <= self.jitter < 1:
            msg = f"TTL jitter is a fraction of the TTL in [0, 1); got jitter={self.jitter}."
            raise ConfigurationError(msg)
        for name in ("stale_ttl", "stale_if_error", "error_ttl", "early_refresh"):
            if getattr(self, name) < 0:
                msg = f"Freshness.{name} cannot be negative; got {getattr(self, name)}."
                raise ConfigurationError(msg)
        if self.none_ttl is not None and self.none_ttl < 0:
            msg = f"Freshness.none_ttl cannot be negative; got {self.none_ttl}."
            raise ConfigurationError(msg)

    def with_changes(self, **changes: object) -> Freshness:
        """A copy with the given fields changed (None values are ignored, so callers can pass options through)."""
        given = {name: value for name, value in changes.items() if value is not None}
        return replace(self, **given)  # type: ignore[arg-type]

    def entry(
        self,
        value: object,
        *,
        now: float,
        delta: float,
        rng: random.Random,
        tags: tuple[str, ...] = (),
        gens: tuple[int, ...] = (),
    ) -> Entry | None:
        """The entry for a freshly loaded `value`, or None when the policy says not to cache it."""
        ttl = self.ttl if value is not None or self.none_ttl is None else self.none_ttl
        if ttl <= 0:
            return None
        if self.jitter:
            ttl *= 1.0 - self.jitter * rng.random()
        fresh_until = now + ttl
        refresh_at = fresh_until
        if self.early_refresh and delta > 0:
            # XFetch: refresh once `now - delta * beta * ln(u) >= expiry`; drawing u once makes it a deadline.
            refresh_at = max(now, fresh_until + delta * self.early_refresh * math.log(1.0 - rng.random()))
        stale_until = fresh_until + self.stale_ttl
        expires_at = fresh_until + max(self.stale_ttl, self.stale_if_error)
        return Entry(
            value,
            fresh_until=fresh_until,
            refresh_at=refresh_at,
            stale_until=stale_until,
            expires_at=expires_at,
            tags=tags,
            gens=gens,
            delta=delta,
        )

    def error_entry(self, error: BaseException, *, now: float, tags: tuple[str, ...], gens: tuple[int, ...]) -> Entry:
        """The negative entry for a cached exception (never served by the fast path)."""
        until = now + self.error_ttl
        return Entry(None, fresh_until=until, refresh_at=NEVER_FAST, tags=tags, gens=gens, error=error)

    def caches_error(self, error: BaseException) -> bool:
        """Whether `error` is one of the exception types this policy caches."""
        return self.error_ttl > 0 and isinstance(error, self.error_types)
