"""The read-through path of cached synchronous functions: the memory tier only, single-flight across threads.

The L2 protocol is async; blocking on it from synchronous code would stall the event loop, so synchronous
functions stop at L1. While a value is stale (stale-while-revalidate), the first caller reloads it and concurrent
callers get the stale value; probabilistic early refresh applies to async functions only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from overdrive.cache.flight import SyncSingleFlight

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from overdrive.cache.freshness import Freshness
    from overdrive.cache.metrics import CacheMetrics
    from overdrive.cache.tiers import MemoryTier

__all__ = ["SyncReader"]


class SyncReader:
    """Reads through one memory tier for synchronous cached functions."""

    def __init__(
        self, l1: MemoryTier, *, clock: Callable[[], float], metrics: CacheMetrics, rng: random.Random
    ) -> None:
        self.l1, self.clock, self.metrics, self.rng = l1, clock, metrics, rng
        self._flights = SyncSingleFlight()

    def read_through(self, key: str, loader: Callable[[], Any], policy: Freshness, tags: tuple[str, ...]) -> Any:
        """The cached value under `key`, loading it with `loader` (once across threads) when absent or stale."""
        l1 = self.l1
        entry = l1.peek(key)
        now = self.clock()
        if entry is not None and (entry.expires_at <= now or not l1.is_current(entry)):
            l1.discard(key)
            entry = None
        metrics = self.metrics
        if entry is not None:
            if now < entry.fresh_until:
                metrics.hits += 1
                if entry.error is not None:
                    raise entry.error
                return entry.value
            if entry.error is None:
                if now < entry.stale_until and self._flights.running(key):
                    metrics.stale_served += 1
                    return entry.value
                metrics.misses += 1
                try:
                    return self._load(key, loader, policy, tags)
                except Exception:  # noqa: BLE001 -- stale-if-error: any failure of the loader
                    metrics.stale_served += 1
                    return entry.value
        metrics.misses += 1
        return self._load(key, loader, policy, tags)

    def _load(self, key: str, loader: Callable[[], Any], policy: Freshness, tags: tuple[str, ...]) -> Any:
        future, leader = self._flights.join_or_lead(key)
        if not leader:
            self.metrics.coalesced_waits += 1
            return future.result()
        try:
            value = self._run(key, loader, policy, tags)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._flights.finish(key)

    def _run(self, key: str, loader: Callable[[], Any], policy: Freshness, tags: tuple[str, ...]) -> Any:
        l1, clock, metrics = self.l1, self.clock, self.metrics
        gens = l1.generations(tags)
        metrics.loads += 1
        start = clock()
        try:
            value = loader()
        except Exception as exc:
            metrics.record_load(clock() - start, failed=True)
            if policy.caches_error(exc):
                l1.store(key, policy.error_entry(exc, now=clock(), tags=tags, gens=gens))
            raise
        delta = clock() - start
        metrics.record_load(delta, failed=False)
        entry = policy.entry(value, now=clock(), delta=delta, rng=self.rng, tags=tags, gens=gens)
        if entry is None:
            l1.discard(key)
        else:
            l1.store(key, entry)
        return value
