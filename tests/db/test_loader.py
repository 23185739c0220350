"""The batch loader turns one tick of loads into one IN query, keeps order, caches, and stays on its event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from overdrive.db import BatchLoader, model_loader
from overdrive.exceptions import KeyNotFound, LoaderError
from tests.db.conftest import StatementLog
from tests.db.models import Item


class Recorder:
    """A batch function over squares that records the keys of each call."""

    def __init__(self, missing: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[int]] = []
        self.missing = missing
        self.error: Exception | None = None

    async def __call__(self, keys: list[int]) -> Mapping[int, int]:
        self.calls.append(list(keys))
        if self.error is not None:
            raise self.error
        return {key: key * key for key in keys if key not in self.missing}


@pytest.mark.anyio
class TestWithTheDatabase:
    async def test_concurrent_loads_in_one_tick_issue_exactly_one_query(
        self, session: AsyncSession, statements: StatementLog
    ) -> None:
        ids = list((await session.scalars(sa.select(Item.id).order_by(Item.name).limit(25))).all())
        loader = model_loader(session, Item, Item.id)
        statements.clear()
        items = await asyncio.gather(*(loader.load(ident) for ident in reversed(ids)))
        assert len(statements.statements) == 1
        assert " IN " in statements.statements[0]
        assert [item.id for item in items if item is not None] == list(reversed(ids))

    async def test_missing_keys_load_as_none_and_require_raises(
        self, session: AsyncSession, statements: StatementLog
    ) -> None:
        known = (await session.scalars(sa.select(Item.id).limit(1))).one()
        loader = model_loader(session, Item, Item.id)
        statements.clear()
        found, missing = await loader.load_many([known, -1])
        assert found is not None
        assert found.id == known
        assert missing is None
        with pytest.raises(KeyNotFound, match="No value was found for key -1"):
            await loader.require(-1)
        assert (await loader.require(known)) is found
        assert len(statements.statements) == 1  # the miss is cached too

    async def test_a_loaded_key_is_served_from_the_cache(self, session: AsyncSession, statements: StatementLog) -> None:
        known = (await session.scalars(sa.select(Item.id).limit(1))).one()
        loader = model_loader(session, Item, Item.id)
        statements.clear()
        first = await loader.load(known)
        again = await loader.load(known)
        assert first is again
        assert len(statements.statements) == 1


@pytest.mark.anyio
class TestBatching:
    async def test_duplicate_keys_are_fetched_once_and_answered_for_every_caller(self) -> None:
        recorder = Recorder()
        loader = BatchLoader(recorder)
        assert list(await asyncio.gather(loader.load(3), loader.load(2), loader.load(3))) == [9, 4, 9]
        assert recorder.calls == [[3, 2]]

    async def test_loads_in_later_ticks_form_a_new_batch_of_only_new_keys(self) -> None:
        recorder = Recorder()
        loader = BatchLoader(recorder)
        await loader.load_many([1, 2])
        assert await loader.load_many([2, 3]) == [4, 9]
        assert recorder.calls == [[1, 2], [3]]

    async def test_large_batches_are_split(self) -> None:
        recorder = Recorder()
        loader = BatchLoader(recorder, max_batch_size=2)
        assert await loader.load_many(range(5)) == [0, 1, 4, 9, 16]
        assert recorder.calls == [[0, 1], [2, 3], [4]]

    async def test_a_sequence_result_is_matched_to_keys_by_position(self) -> None:
        async def batch(keys: list[int]) -> Sequence[str | None]:
            return [None if key < 0 else str(key) for key in keys]

        assert await BatchLoader(batch).load_many([5, -1, 7]) == ["5", None, "7"]

    async def test_a_sequence_of_the_wrong_length_is_a_loader_error(self) -> None:
        async def batch(keys: list[int]) -> Sequence[int]:
            return [1]

        with pytest.raises(LoaderError, match="returned 1 values for 2 keys"):
            await BatchLoader(batch).load_many([1, 2])

    async def test_a_failure_reaches_every_caller_and_is_not_cached(self) -> None:
        recorder = Recorder()
        recorder.error = ConnectionError("database went away")
        loader = BatchLoader(recorder)
        results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
        assert [type(result) for result in results] == [ConnectionError, ConnectionError]
        recorder.error = None
        assert await loader.load(1) == 1

    async def test_a_cancelled_caller_does_not_cancel_the_others(self) -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(keys: list[int]) -> dict[int, int]:
            started.set()
            await release.wait()
            return {key: key for key in keys}

        loader = BatchLoader(slow)
        doomed = asyncio.create_task(loader.load(1))
        survivor = asyncio.create_task(loader.load(1))
        await started.wait()
        doomed.cancel()
        release.set()
        assert await survivor == 1
        with pytest.raises(asyncio.CancelledError):
            await doomed

    async def test_a_key_cleared_while_its_batch_fails_keeps_its_new_entry(self) -> None:
        recorder = Recorder()
        recorder.error = ConnectionError("database went away")
        loader = BatchLoader(recorder)
        first = asyncio.ensure_future(loader.load(1))
        await asyncio.sleep(0)  # the batch is dispatched and fails on its first step
        loader.clear(1)
        loader.prime(1, 5)
        with pytest.raises(ConnectionError):
            await first
        assert await loader.load(1) == 5

    async def test_a_key_cleared_and_loaded_again_in_one_tick_answers_both_callers(self) -> None:
        recorder = Recorder()
        loader = BatchLoader(recorder)

        async def clear_and_load() -> int | None:
            loader.clear(3)
            return await loader.load(3)

        first = asyncio.ensure_future(loader.load(3))
        second = asyncio.ensure_future(clear_and_load())
        assert list(await asyncio.gather(first, second)) == [9, 9]
        assert recorder.calls == [[3]]

    async def test_prime_and_clear_control_the_cache(self) -> None:
        recorder = Recorder()
        loader = BatchLoader(recorder)
        loader.prime(4, 100)
        loader.prime(4, 200)  # the first value stays
        assert await loader.load(4) == 100
        loader.clear(4)
        assert await loader.load(4) == 16
        loader.clear()
        assert await loader.load(4) == 16
        assert recorder.calls == [[4], [4]]


class TestEventLoops:
    def test_a_loader_refuses_a_second_event_loop(self) -> None:
        loader = BatchLoader(Recorder())
        assert asyncio.run(loader.load(2)) == 4
        with pytest.raises(LoaderError, match="belongs to another event loop"):
            asyncio.run(loader.load(2))
        with pytest.raises(LoaderError, match="belongs to another event loop"):
            asyncio.run(loader.load(3))
