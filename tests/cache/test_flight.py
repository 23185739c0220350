"""Single-flight: one loader per key under any concurrency, and cancellation never strands the other callers."""

from __future__ import annotations

import asyncio

import pytest

from overdrive.cache import Cache

pytestmark = pytest.mark.anyio


class Gate:
    """A loader that blocks until released and counts its calls."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        number = self.calls
        self.started.set()
        await self.release.wait()
        return f"value-{number}"


class TestStampede:
    async def test_a_thousand_concurrent_misses_make_one_loader_call(self, cache: Cache) -> None:
        gate = Gate()
        callers = [asyncio.create_task(cache.get_or_load("k", gate)) for _ in range(1000)]
        await gate.started.wait()
        gate.release.set()
        results = await asyncio.gather(*callers)
        assert gate.calls == 1
        assert set(results) == {"value-1"}
        assert cache.metrics.coalesced_waits == 999

    async def test_different_keys_load_independently(self, cache: Cache) -> None:
        gate = Gate()
        gate.release.set()
        await asyncio.gather(*(cache.get_or_load(f"k{i % 10}", gate) for i in range(100)))
        assert gate.calls == 10

    async def test_a_loader_error_reaches_every_waiter_and_the_next_caller_retries(self, cache: Cache) -> None:
        calls = 0

        async def failing() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            msg = "down"
            raise RuntimeError(msg)

        results = await asyncio.gather(*(cache.get_or_load("k", failing) for _ in range(5)), return_exceptions=True)
        assert calls == 1
        assert all(isinstance(r, RuntimeError) for r in results)
        with pytest.raises(RuntimeError):
            await cache.get_or_load("k", failing)
        assert calls == 2


class TestCancellation:
    async def test_a_cancelled_waiter_does_not_cancel_the_load(self, cache: Cache) -> None:
        gate = Gate()
        first = asyncio.create_task(cache.get_or_load("k", gate))
        await gate.started.wait()
        waiter = asyncio.create_task(cache.get_or_load("k", gate))
        await asyncio.sleep(0)
        waiter.cancel()
        gate.release.set()
        assert await first == "value-1"
        assert waiter.cancelled()
        assert gate.calls == 1

    async def test_a_cancelled_first_caller_still_completes_the_load_for_the_others(self, cache: Cache) -> None:
        gate = Gate()
        first = asyncio.create_task(cache.get_or_load("k", gate))
        await gate.started.wait()
        others = [asyncio.create_task(cache.get_or_load("k", gate)) for _ in range(3)]
        await asyncio.sleep(0)
        first.cancel()
        gate.release.set()
        assert await asyncio.gather(*others) == ["value-1"] * 3
        assert first.cancelled()
        assert gate.calls == 1

    async def test_when_every_caller_gives_up_the_load_still_fills_the_cache(self, cache: Cache) -> None:
        gate = Gate()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cache.get_or_load("k", gate), timeout=0.01)
        gate.release.set()
        await cache.drain()
        assert await cache.get("k") == "value-1"
        assert gate.calls == 1

    async def test_aclose_cancels_running_loads(self, cache: Cache) -> None:
        gate = Gate()
        caller = asyncio.create_task(cache.get_or_load("k", gate))
        await gate.started.wait()
        await cache.aclose()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await cache.get("k") is None


class TestSuperseded:
    async def test_a_set_during_a_load_wins_over_the_loaded_value(self, cache: Cache) -> None:
        gate = Gate()
        caller = asyncio.create_task(cache.get_or_load("k", gate))
        await gate.started.wait()
        await cache.set("k", "written")
        gate.release.set()
        assert await caller == "value-1"  # the caller gets its load's result ...
        assert await cache.get("k") == "written"  # ... but the cache keeps the newer write

    async def test_callers_after_a_delete_start_a_fresh_load(self, cache: Cache) -> None:
        gate = Gate()
        before = asyncio.create_task(cache.get_or_load("k", gate))
        await gate.started.wait()
        await cache.delete("k")
        after = asyncio.create_task(cache.get_or_load("k", gate))
        await asyncio.sleep(0)
        gate.release.set()
        assert (await before, await after) == ("value-1", "value-2")
        assert await cache.get("k") == "value-2"
