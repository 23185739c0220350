"""@cache.cached: async and sync functions, signatures kept for type checkers, keys, tags and invalidate."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Coroutine
from typing import Any

import pytest

from overdrive.cache import AsyncCachedFunction, Cache, MemoryTier, SyncCachedFunction
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock

pytestmark = pytest.mark.anyio


class TestAsync:
    async def test_results_are_cached_per_bound_arguments(self, cache: Cache) -> None:
        calls: list[tuple[int, int]] = []

        @cache.cached(ttl=10)
        async def add(a: int, b: int = 2) -> int:
            calls.append((a, b))
            return a + b

        assert [await add(1), await add(1, 2), await add(a=1), await add(1, b=2)] == [3, 3, 3, 3]
        assert await add(2) == 4
        assert calls == [(1, 2), (2, 2)]

    async def test_invalidate_takes_the_same_arguments(self, cache: Cache) -> None:
        calls = 0

        @cache.cached()
        async def product(product_id: int) -> dict[str, int]:
            nonlocal calls
            calls += 1
            return {"id": product_id, "version": calls}

        await product(7)
        assert await product.invalidate(7) is True
        assert await product(7) == {"id": 7, "version": 2}
        assert await product.invalidate(8) is False

    async def test_a_format_string_key(self, cache: Cache) -> None:
        @cache.cached(key="user:{user_id}")
        async def user(user_id: int, *, verbose: bool = False) -> str:
            return f"u{user_id}"

        assert user.key(5, verbose=True) == "user:5"
        await user(5)
        assert await cache.get("user:5") == "u5"

    async def test_a_callable_key(self, cache: Cache) -> None:
        @cache.cached(key=lambda a, b: f"pair:{min(a, b)}-{max(a, b)}")
        async def pair(a: int, b: int) -> int:
            return a * b

        assert pair.key(3, 1) == pair.key(1, 3) == "pair:1-3"

    async def test_templated_tags_invalidate_by_argument(self, cache: Cache) -> None:
        calls = 0

        @cache.cached(tags=["products", "product:{product_id}"])
        async def product(product_id: int) -> int:
            nonlocal calls
            calls += 1
            return calls

        await product(1)
        await product(2)
        await cache.invalidate_tags("product:1")
        await product(1)
        await product(2)
        assert calls == 3

    async def test_a_callable_tags_function(self, cache: Cache) -> None:
        @cache.cached(tags=lambda category, page: [f"category:{category}"])
        async def listing(category: str, page: int = 1) -> str:
            return f"{category}-{page}"

        await listing("shoes", 2)
        await cache.invalidate_tags("category:shoes")
        assert cache.l1 is not None
        entry = cache.l1.peek(listing.key("shoes", 2))
        assert entry is not None
        assert not cache.l1.is_current(entry)

    async def test_var_args_keyword_only_and_positional_only_parameters_bind(self, cache: Cache) -> None:
        @cache.cached()
        async def many(a: int, /, b: int = 1, *rest: int, c: int = 0, **extra: int) -> int:
            return a + b + sum(rest) + c + sum(extra.values())

        assert await many(1, 1, 2, c=3, y=1, x=2) == 10
        assert many.key(1, 1, 2, c=3, y=1, x=2) == many.key(1, 1, 2, c=3, x=2, y=1)
        assert many.key(1) == many.key(1, 1)

    async def test_signature_and_metadata_are_kept(self, cache: Cache) -> None:
        async def original(a: int, b: str = "x") -> str:
            """Doc."""
            return b * a

        wrapped = cache.cached()(original)
        assert wrapped.__name__ == "original"  # type: ignore[attr-defined]
        assert wrapped.__doc__ == "Doc."
        assert inspect.signature(wrapped) == inspect.signature(original)

    async def test_the_hit_path_counts_hits(self, cache: Cache) -> None:
        @cache.cached()
        async def one() -> int:
            return 1

        for _ in range(5):
            await one()
        assert (cache.metrics.misses, cache.metrics.hits) == (1, 4)

    async def test_an_l2_only_cache_decorates_async_functions(self, clock: FakeClock) -> None:
        cache = Cache(None, MemoryTier(10, clock=clock), clock=clock)
        calls = 0

        @cache.cached()
        async def value() -> list[int]:
            nonlocal calls
            calls += 1
            return [1]

        assert await value() == await value() == [1]
        assert calls == 1


class TestSync:
    def test_sync_functions_are_cached_and_invalidated(self, cache: Cache) -> None:
        calls = 0

        @cache.cached(ttl=10)
        def square(x: int) -> int:
            nonlocal calls
            calls += 1
            return x * x

        assert square(3) == square(3) == 9
        assert calls == 1
        assert square.invalidate(3) is True
        assert square(3) == 9
        assert calls == 2

    def test_sync_expiry_stale_if_error_and_negative_caching(self, cache: Cache, clock: FakeClock) -> None:
        state = {"fail": False, "calls": 0}

        @cache.cached(ttl=10, jitter=0, stale_if_error=100, error_types=(KeyError,), error_ttl=5)
        def lookup(x: int) -> int:
            state["calls"] += 1
            if state["fail"]:
                msg = "down"
                raise RuntimeError(msg)
            if x < 0:
                raise KeyError(x)
            return x

        assert lookup(1) == 1
        clock.advance(20)
        state["fail"] = True
        assert lookup(1) == 1  # stale-if-error
        state["fail"] = False
        for _ in range(3):
            with pytest.raises(KeyError):
                lookup(-1)
        assert state["calls"] == 3

    def test_concurrent_threads_share_one_load(self, cache: Cache) -> None:
        started, release = threading.Event(), threading.Event()
        calls = 0

        @cache.cached()
        def slow() -> int:
            nonlocal calls
            calls += 1
            started.set()
            release.wait(5)
            return 42

        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(slow())) for _ in range(8)]
        threads[0].start()
        started.wait(5)
        for thread in threads[1:]:
            thread.start()
        release.set()
        for thread in threads:
            thread.join(5)
        assert results == [42] * 8
        assert calls == 1

    def test_sync_functions_need_a_memory_tier(self, clock: FakeClock) -> None:
        cache = Cache(None, MemoryTier(10, clock=clock), clock=clock)
        with pytest.raises(ConfigurationError, match="memory tier only, and this cache has none"):

            @cache.cached()
            def f() -> int:
                return 1


class TestTyping:
    """Checked by mypy: the decorated functions keep their parameter and return types."""

    def test_types_are_kept(self, cache: Cache) -> None:
        @cache.cached()
        async def fetch(a: int, b: str = "") -> list[str]:
            return [b] * a

        @cache.cached()
        def compute(a: int) -> float:
            return a / 2

        async_typed: AsyncCachedFunction[[int, str], list[str]] = fetch
        sync_typed: SyncCachedFunction[[int], float] = compute
        call: Coroutine[Any, Any, list[str]] = fetch(1, "x")
        call.close()
        result: float = compute(3)
        assert async_typed is fetch
        assert sync_typed is compute
        assert result == 1.5
