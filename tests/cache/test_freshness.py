"""Freshness: TTL jitter bounds, stale-while-revalidate, stale-if-error, negative caching and early refresh."""

from __future__ import annotations

import random

import pytest

from overdrive.cache import Cache, Freshness, MemoryTier
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock
from tests.cache.conftest import Loader

pytestmark = pytest.mark.anyio


class TestJitter:
    def test_jittered_ttls_stay_within_bounds_and_spread(self) -> None:
        policy = Freshness(ttl=100, jitter=0.2)
        rng = random.Random(7)
        ttls = []
        for _ in range(2000):
            made = policy.entry("v", now=0.0, delta=0.0, rng=rng)
            assert made is not None
            ttls.append(made.fresh_until)
        assert min(ttls) >= 80
        assert max(ttls) <= 100
        assert max(ttls) - min(ttls) > 15  # spread across the window, not clumped

    def test_the_same_seed_gives_the_same_ttls(self) -> None:
        policy = Freshness(ttl=100, jitter=0.5)
        first = [policy.entry(1, now=0, delta=0, rng=random.Random(3)) for _ in range(3)]
        second = [policy.entry(1, now=0, delta=0, rng=random.Random(3)) for _ in range(3)]
        assert [e.fresh_until for e in first if e] == [e.fresh_until for e in second if e]

    @pytest.mark.parametrize(
        "options",
        [{"ttl": 0}, {"jitter": 1.0}, {"jitter": -0.1}, {"stale_ttl": -1}, {"none_ttl": -1}],
    )
    def test_bad_settings_are_refused(self, options: dict[str, float]) -> None:
        with pytest.raises(ConfigurationError):
            Freshness(**options)  # type: ignore[arg-type]


class TestStaleWhileRevalidate:
    async def test_stale_is_served_and_refreshed_exactly_once(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_ttl=30)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(15)
        loader.value = "new"
        served = [await cache.get_or_load("k", loader, freshness=policy) for _ in range(20)]
        assert served == ["old"] * 20
        await cache.drain()
        assert loader.calls == 2
        assert await cache.get_or_load("k", loader, freshness=policy) == "new"
        assert cache.metrics.stale_served == 20
        assert cache.metrics.refreshes == 1

    async def test_past_the_stale_window_the_caller_waits_for_a_load(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_ttl=5)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(16)
        loader.value = "new"
        assert await cache.get_or_load("k", loader, freshness=policy) == "new"

    async def test_a_failed_background_refresh_keeps_serving_stale(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_ttl=30)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(12)
        loader.error = RuntimeError("down")
        assert await cache.get_or_load("k", loader, freshness=policy) == "old"
        await cache.drain()
        assert await cache.get_or_load("k", loader, freshness=policy) == "old"
        await cache.drain()
        assert cache.metrics.load_errors == 2


class TestStaleIfError:
    async def test_a_failing_reload_serves_the_stale_value(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_if_error=60)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(30)
        loader.error = RuntimeError("down")
        assert await cache.get_or_load("k", loader, freshness=policy) == "old"
        assert cache.metrics.stale_served == 1

    async def test_after_the_window_the_error_propagates(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_if_error=60)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(71)
        loader.error = RuntimeError("down")
        with pytest.raises(RuntimeError):
            await cache.get_or_load("k", loader, freshness=policy)

    async def test_a_successful_reload_replaces_the_stale_value(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=10, jitter=0, stale_if_error=60)
        loader = Loader("old")
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(30)
        loader.value = "new"
        assert await cache.get_or_load("k", loader, freshness=policy) == "new"


class TestNegativeCaching:
    async def test_none_has_its_own_ttl(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=60, jitter=0, none_ttl=5)
        loader = Loader(None)
        await cache.get_or_load("k", loader, freshness=policy)
        clock.advance(4)
        await cache.get_or_load("k", loader, freshness=policy)
        assert loader.calls == 1
        clock.advance(2)
        await cache.get_or_load("k", loader, freshness=policy)
        assert loader.calls == 2

    async def test_none_ttl_zero_does_not_cache_none(self, cache: Cache) -> None:
        policy = Freshness(ttl=60, none_ttl=0)
        loader = Loader(None)
        await cache.get_or_load("k", loader, freshness=policy)
        await cache.get_or_load("k", loader, freshness=policy)
        assert loader.calls == 2

    async def test_chosen_exceptions_are_cached_for_error_ttl(self, cache: Cache, clock: FakeClock) -> None:
        policy = Freshness(ttl=60, jitter=0, error_types=(LookupError,), error_ttl=3)
        loader = Loader()
        loader.error = KeyError("no such product")
        for _ in range(3):
            with pytest.raises(KeyError):
                await cache.get_or_load("k", loader, freshness=policy)
        assert loader.calls == 1
        clock.advance(3)
        loader.error = None
        assert await cache.get_or_load("k", loader, freshness=policy) == "v"

    async def test_other_exceptions_are_not_cached(self, cache: Cache) -> None:
        policy = Freshness(ttl=60, error_types=(LookupError,), error_ttl=3)
        loader = Loader()
        loader.error = RuntimeError("down")
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await cache.get_or_load("k", loader, freshness=policy)
        assert loader.calls == 2

    async def test_a_cached_error_is_absent_for_get(self, cache: Cache) -> None:
        policy = Freshness(ttl=60, error_types=(LookupError,), error_ttl=3)
        loader = Loader()
        loader.error = KeyError("x")
        with pytest.raises(KeyError):
            await cache.get_or_load("k", loader, freshness=policy)
        assert await cache.get("k", "absent") == "absent"


class TestEarlyRefresh:
    async def test_slow_loads_refresh_before_the_ttl(self, clock: FakeClock) -> None:
        cache = Cache(MemoryTier(10, clock=clock), clock=clock, rng=random.Random(0))
        policy = Freshness(ttl=100, jitter=0, early_refresh=1.0)
        calls = 0

        async def slow() -> int:
            nonlocal calls
            calls += 1
            clock.advance(20)  # a 20 s load: XFetch refreshes well before the 100 s TTL, on average
            return calls

        await cache.get_or_load("k", slow, freshness=policy)
        assert cache.l1 is not None
        entry = cache.l1.peek("k")
        assert entry is not None
        assert entry.refresh_at < entry.fresh_until
        clock.set(entry.refresh_at)
        assert await cache.get_or_load("k", slow, freshness=policy) == 1  # still fresh: served, refreshed behind
        await cache.drain()
        assert calls == 2
        assert cache.metrics.early_refreshes == 1

    def test_without_early_refresh_the_deadline_is_the_ttl(self) -> None:
        made = Freshness(ttl=10, jitter=0).entry(1, now=0, delta=5, rng=random.Random(0))
        assert made is not None
        assert made.refresh_at == made.fresh_until == 10
