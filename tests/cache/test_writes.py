"""Write-through atomicity and the write-behind buffer: batches, coalescing, backpressure, retries, flush on close."""

from __future__ import annotations

import asyncio

import pytest

from overdrive.cache import Cache, Entry, MemoryTier, WriteBehind
from overdrive.exceptions import CacheError, ConfigurationError, SerializationError, WriteBehindError
from overdrive.testing import FakeClock

pytestmark = pytest.mark.anyio


class BrokenTier(MemoryTier):
    """A memory tier whose writes fail, standing in for an L2 that went away."""

    async def set(self, key: str, entry: Entry) -> None:
        msg = "tier down"
        raise ConnectionError(msg)


class TestWriteThrough:
    async def test_the_store_and_the_cache_both_take_the_value(self, cache: Cache) -> None:
        store: dict[str, int] = {}

        async def writer(value: int) -> None:
            store["k"] = value

        await cache.write_through("k", 5, writer)
        assert store == {"k": 5}
        assert await cache.get("k") == 5

    async def test_a_failed_store_write_leaves_no_cached_value(self, cache: Cache) -> None:
        await cache.set("k", "old")

        async def writer(value: str) -> None:
            msg = "db down"
            raise RuntimeError(msg)

        with pytest.raises(RuntimeError, match="db down"):
            await cache.write_through("k", "new", writer)
        assert await cache.get("k") is None

    async def test_an_unserializable_value_never_reaches_the_store(self, two_level: Cache) -> None:
        writes: list[object] = []

        async def writer(value: object) -> None:
            writes.append(value)

        with pytest.raises(SerializationError):
            await two_level.write_through("k", object(), writer)
        assert writes == []

    async def test_a_failed_cache_update_drops_the_key_everywhere(self, clock: FakeClock) -> None:
        l1 = MemoryTier(10, clock=clock)
        cache = Cache(l1, BrokenTier(10, clock=clock), clock=clock)
        l1.store("k", Entry("old", fresh_until=clock() + 60))
        store: dict[str, str] = {}

        async def writer(value: str) -> None:
            store["k"] = value

        with pytest.raises(CacheError, match="could not be updated; the key was dropped"):
            await cache.write_through("k", "new", writer)
        assert store == {"k": "new"}
        assert "k" not in l1


class Store:
    """A store that records batches and fails the next `failures` flushes."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.failures = failures

    async def __call__(self, batch: list[tuple[str, int]]) -> None:
        if self.failures:
            self.failures -= 1
            msg = "store down"
            raise ConnectionError(msg)
        self.batches.append(batch)

    @property
    def written(self) -> dict[str, int]:
        return {key: value for batch in self.batches for key, value in batch}


class TestWriteBehind:
    async def test_writes_are_flushed_in_batches_in_arrival_order(self) -> None:
        store = Store()
        buffer = WriteBehind(store, batch_size=3)
        for i in range(7):
            await buffer.put(f"k{i}", i)
        await buffer.flush()
        assert [len(batch) for batch in store.batches] == [3, 3, 1]
        assert [key for batch in store.batches for key, _ in batch] == [f"k{i}" for i in range(7)]

    async def test_writes_to_one_key_coalesce(self) -> None:
        store = Store()
        buffer = WriteBehind(store)
        for i in range(5):
            await buffer.put("k", i)
        await buffer.flush()
        assert store.batches == [[("k", 4)]]

    async def test_the_background_task_flushes_without_being_asked(self) -> None:
        store = Store()
        async with WriteBehind(store, batch_size=2, interval=0.01) as buffer:
            await buffer.put("a", 1)
            await buffer.put("b", 2)
            for _ in range(100):
                if store.written:
                    break
                await asyncio.sleep(0.005)
            assert store.written == {"a": 1, "b": 2}

    async def test_a_failed_flush_is_reported_kept_and_retried(self) -> None:
        store = Store(failures=2)
        reported: list[BaseException] = []
        async with WriteBehind(
            store, batch_size=1, interval=0.01, retry_delay=0.001, on_error=lambda exc, batch: reported.append(exc)
        ) as buffer:
            await buffer.put("a", 1)
            for _ in range(200):
                if store.written:
                    break
                await asyncio.sleep(0.005)
        assert store.written == {"a": 1}
        assert len(reported) == 2
        assert buffer.failed_flushes == 2

    async def test_a_newer_value_wins_over_a_failed_batch(self) -> None:
        store = Store(failures=1)
        buffer = WriteBehind(store)
        await buffer.put("k", 1)
        with pytest.raises(ConnectionError):
            await buffer.flush()
        await buffer.put("k", 2)
        await buffer.flush()
        assert store.written == {"k": 2}

    async def test_close_flushes_everything_left(self) -> None:
        store = Store()
        buffer = WriteBehind(store, interval=60)
        buffer.start()
        for i in range(10):
            await buffer.put(f"k{i}", i)
        await buffer.aclose()
        assert len(store.written) == 10
        assert buffer.flushed == 10

    async def test_close_raises_with_the_writes_it_could_not_flush(self) -> None:
        buffer = WriteBehind(Store(failures=10), close_attempts=2, retry_delay=0.001)
        await buffer.put("k", 1)
        with pytest.raises(WriteBehindError) as caught:
            await buffer.aclose()
        assert caught.value.pending == [("k", 1)]
        with pytest.raises(WriteBehindError, match="closed"):
            await buffer.put("j", 2)

    async def test_a_full_buffer_waits_for_room_instead_of_dropping(self) -> None:
        store = Store()
        async with WriteBehind(store, max_pending=2, batch_size=2, interval=60) as buffer:
            for i in range(6):
                await asyncio.wait_for(buffer.put(f"k{i}", i), timeout=1)
        assert len(store.written) == 6

    def test_a_batch_larger_than_the_bound_is_refused(self) -> None:
        with pytest.raises(ConfigurationError):
            WriteBehind(Store(), max_pending=1, batch_size=2)
