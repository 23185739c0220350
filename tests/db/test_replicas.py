"""Replica routing on a real streaming replica: reads on the replica, writes on the primary, no stale own writes.

Every test runs on sync psycopg and on async asyncpg sessions; the steps of one session are plain functions of a sync
`Session`, run directly or through `AsyncSession.run_sync` (the same greenlet path `AsyncSession.execute` takes).
Which server answered is told by `pg_is_in_recovery()` in the session's own connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from overdrive.db import ReplicaRouter, RoutedSession
from overdrive.testing import FakeClock
from tests.db.replication import IN_RECOVERY, Note, replay_paused, url, wait_for_replay, wait_for_wal_written
from tests.services import ReplicaPair

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@dataclass
class Harness:
    """One driver's router and a way to run steps in a fresh routed session."""

    router: ReplicaRouter
    run: Callable[[Callable[[Session], Any]], Awaitable[Any]]
    refresh: Callable[[], Awaitable[None]]
    clock: FakeClock


def _engines_sync(pair: ReplicaPair, replicas: int) -> tuple[sa.Engine, list[sa.Engine]]:
    primary = sa.create_engine(url(pair.primary_url, "psycopg"))
    return primary, [sa.create_engine(url(pair.replica_url, "psycopg"), pool_pre_ping=True) for _ in range(replicas)]


@contextmanager
def _sync_harness(pair: ReplicaPair, options: dict[str, Any]) -> Iterator[Harness]:
    primary, replicas = _engines_sync(pair, options.pop("replicas", 1))
    clock = FakeClock()
    router = ReplicaRouter(primary=primary, replicas=replicas, clock=clock, **options)
    factory = router.sessionmaker()

    async def run(steps: Callable[[Session], Any]) -> Any:
        with factory() as session:
            return steps(session)

    async def refresh() -> None:
        router.refresh()

    try:
        yield Harness(router, run, refresh, clock)
    finally:
        for engine in (primary, *replicas):
            engine.dispose()


@pytest.fixture(params=["psycopg", "asyncpg"])
async def make(request: pytest.FixtureRequest, replica_pair: ReplicaPair) -> AsyncIterator[Callable[..., Harness]]:
    """Build harnesses for this test's driver: ``make(max_lag_bytes=..., replicas=2, ...)``."""
    disposers: list[Callable[[], Awaitable[None]]] = []
    stack = ExitStack()

    def build(**options: Any) -> Harness:
        if request.param == "psycopg":
            return stack.enter_context(_sync_harness(replica_pair, options))
        primary = create_async_engine(url(replica_pair.primary_url, "asyncpg"))
        count = options.pop("replicas", 1)
        replicas = [
            create_async_engine(url(replica_pair.replica_url, "asyncpg"), pool_pre_ping=True) for _ in range(count)
        ]
        disposers.extend(engine.dispose for engine in (primary, *replicas))
        clock = FakeClock()
        router = ReplicaRouter(primary=primary, replicas=replicas, clock=clock, **options)
        factory = router.async_sessionmaker()

        async def run(steps: Callable[[Session], Any]) -> Any:
            async with factory() as session:
                return await session.run_sync(steps)

        return Harness(router, run, router.refresh_async, clock)

    try:
        yield build
    finally:
        stack.close()
        for dispose in disposers:
            await dispose()


def in_recovery(session: Session) -> bool:
    return bool(session.scalar(IN_RECOVERY))


def add_note(body: str) -> Callable[[Session], int]:
    def steps(session: Session) -> int:
        note = Note(body=body)
        session.add(note)
        session.commit()
        return note.id

    return steps


def find_note(body: str) -> Callable[[Session], tuple[bool, bool]]:
    """Steps answering (whether the note is visible, whether a replica answered)."""

    def steps(session: Session) -> tuple[bool, bool]:
        found = session.scalar(sa.select(Note.id).where(Note.body == body)) is not None
        return found, in_recovery(session)

    return steps


def unique() -> str:
    return uuid.uuid4().hex


UNLIMITED = {"max_lag_bytes": None, "max_lag_seconds": None}


class TestRouting:
    async def test_reads_go_to_a_replica_when_nothing_writes(self, make: Callable[..., Harness]) -> None:
        harness = make()
        answers = [await harness.run(in_recovery) for _ in range(20)]
        assert answers == [True] * 20

    async def test_a_transaction_that_wrote_stays_on_the_primary(self, make: Callable[..., Harness]) -> None:
        harness = make()

        def steps(session: Session) -> list[bool]:
            before = in_recovery(session)
            session.add(Note(body=unique()))
            session.flush()
            after = [in_recovery(session), in_recovery(session)]
            session.rollback()
            return [before, *after, in_recovery(session)]

        # A replica, then the primary until the transaction ends, then a replica again (nothing was committed).
        assert await harness.run(steps) == [True, False, False, True]

    async def test_select_for_update_and_the_rest_of_its_transaction_go_to_the_primary(
        self, make: Callable[..., Harness]
    ) -> None:
        harness = make()

        def steps(session: Session) -> tuple[bool, bool]:
            locked = session.execute(sa.select(Note.id, sa.func.pg_is_in_recovery()).limit(1).with_for_update()).all()
            return bool(locked and locked[0][1]), in_recovery(session)

        await harness.run(add_note(unique()))
        assert await harness.run(steps) == (False, False)

    async def test_text_goes_to_the_primary_unless_marked_for_a_replica(self, make: Callable[..., Harness]) -> None:
        harness = make()
        query = "SELECT pg_is_in_recovery()"

        def steps(session: Session) -> tuple[object, object, object]:
            marked = session.scalar(sa.text(query).execution_options(route="replica"))
            by_argument = session.scalar(sa.text(query), bind_arguments={"route": "replica"})
            return marked, by_argument, session.scalar(sa.text(query))

        assert await harness.run(steps) == (True, True, False)

    async def test_a_statement_marked_primary_goes_there_alone(self, make: Callable[..., Harness]) -> None:
        harness = make()

        def steps(session: Session) -> tuple[bool, bool]:
            forced = bool(session.scalar(IN_RECOVERY.execution_options(route="primary")))
            return forced, in_recovery(session)

        assert await harness.run(steps) == (False, True)

    async def test_a_savepoint_runs_on_the_primary(self, make: Callable[..., Harness]) -> None:
        harness = make()

        def steps(session: Session) -> bool:
            with session.begin_nested():
                return in_recovery(session)

        assert await harness.run(steps) is False

    async def test_round_robin_alternates_between_replicas_per_session(self, make: Callable[..., Harness]) -> None:
        harness = make(replicas=2)
        replicas = harness.router.monitor.replicas

        def chosen(session: Session) -> int:
            bind = session.get_bind(clause=sa.select(1))
            in_recovery(session)
            return replicas.index(bind)

        picks = [await harness.run(chosen) for _ in range(6)]
        assert sorted(picks) == [0, 0, 0, 1, 1, 1]
        assert picks[::2] == [picks[0]] * 3

    async def test_least_lag_prefers_the_replica_furthest_ahead(self, make: Callable[..., Harness]) -> None:
        harness = make(replicas=2, balance="least_lag")
        replicas = harness.router.monitor.replicas
        await harness.refresh()
        # Both engines reach the same server, so they tie; the tie keeps the configured order.
        picks = [
            await harness.run(lambda session: replicas.index(session.get_bind(clause=sa.select(1)))) for _ in range(4)
        ]
        assert picks == [0, 0, 0, 0]

    async def test_a_session_keeps_its_replica_for_the_whole_transaction(self, make: Callable[..., Harness]) -> None:
        harness = make(replicas=2)

        def binds(session: Session) -> set[object]:
            return {session.get_bind(clause=sa.select(1)) for _ in range(5)}

        assert len(await harness.run(binds)) == 1


class TestReadYourWrites:
    async def test_the_writing_session_reads_its_commit_while_replay_is_paused(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(**UNLIMITED)
        body = unique()

        def steps(session: Session) -> tuple[bool, bool]:
            add_note(body)(session)
            return find_note(body)(session)

        with replay_paused(replica_pair):
            assert await harness.run(steps) == (True, False)
            # Proof that the replica is stale: a session outside any scope still reads it there.
            assert await harness.run(find_note(body)) == (False, True)

    async def test_the_next_request_with_the_floor_reads_the_write_until_replay_catches_up(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(**UNLIMITED)
        body = unique()
        with replay_paused(replica_pair):
            with harness.router.track() as first:
                await harness.run(add_note(body))
            assert first.wrote
            assert first.floor is not None
            for _ in range(3):
                with harness.router.track(first.floor):
                    assert await harness.run(find_note(body)) == (True, False)
                await harness.refresh()
        # Replay resumed and caught up; once polled, the replica serves the floor again.
        await harness.refresh()
        with harness.router.track(first.floor):
            assert await harness.run(find_note(body)) == (True, True)

    async def test_every_session_of_a_scope_sees_a_write_made_by_another(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(**UNLIMITED)
        body = unique()
        with replay_paused(replica_pair), harness.router.track():
            assert await harness.run(find_note(body)) == (False, True)
            await harness.run(add_note(body))
            assert await harness.run(find_note(body)) == (True, False)

    async def test_a_reading_transaction_leaves_its_replica_when_the_scope_writes(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(**UNLIMITED)
        router = harness.router

        def steps(reader: Session) -> tuple[bool, bool]:
            before = in_recovery(reader)
            scope = router.current_scope()
            assert scope is not None
            scope.note_write(2**63)  # what another session's commit does, at a position far ahead of the replica
            return before, in_recovery(reader)

        with replay_paused(replica_pair), router.track():
            assert await harness.run(steps) == (True, False)

    async def test_a_commit_on_a_sqlalchemy_transaction_block_is_tracked_too(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(**UNLIMITED)
        body = unique()

        def steps(session: Session) -> tuple[bool, bool]:
            with session.begin():
                session.add(Note(body=body))
            return find_note(body)(session)

        with replay_paused(replica_pair):
            assert await harness.run(steps) == (True, False)


class TestLagAndHealth:
    async def test_a_replica_lagging_beyond_max_lag_bytes_is_skipped(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(max_lag_bytes=1024, max_lag_seconds=None)
        with replay_paused(replica_pair):
            for _ in range(10):
                await harness.run(add_note(unique() * 20))
            wait_for_wal_written(replica_pair)  # byte lag counts WAL the primary has written, so it could be sent
            await harness.refresh()
            assert await harness.run(in_recovery) is False
            (status,) = harness.router.statuses()
            assert not status.healthy
            assert status.lag_bytes is not None
            assert status.lag_bytes > 1024
            assert "WAL bytes behind" in (status.error or "")
        await harness.refresh()
        assert await harness.run(in_recovery) is True

    async def test_a_replica_lagging_beyond_max_lag_seconds_is_skipped(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(max_lag_bytes=None, max_lag_seconds=0.05)
        with replay_paused(replica_pair):
            await harness.run(add_note(unique()))
            wait_for_wal_written(replica_pair)
            await anyio.sleep(0.1)
            await harness.refresh()
            (status,) = harness.router.statuses()
            assert not status.healthy
            assert "s behind the primary" in (status.error or "")
            assert await harness.run(in_recovery) is False

    async def test_an_idle_caught_up_replica_counts_as_not_lagging(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(max_lag_seconds=0.001)
        wait_for_replay(replica_pair)
        await harness.refresh()
        (status,) = harness.router.statuses()
        assert (status.healthy, status.lag_bytes, status.lag_seconds) == (True, 0, 0.0)
        assert await harness.run(in_recovery) is True

    async def test_a_stopped_replica_sends_reads_to_the_primary_then_returns(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(retry_after=30.0)
        assert await harness.run(in_recovery) is True
        replica_pair.stop_replica()
        try:
            # The cached status still says healthy: the checkout fails, the read moves to the primary.
            assert [await harness.run(in_recovery) for _ in range(3)] == [False] * 3
            (status,) = harness.router.statuses()
            assert not status.healthy
            assert "refused a connection" in (status.error or "")
        finally:
            replica_pair.start_replica()
        await harness.refresh()
        assert await harness.run(in_recovery) is False  # still skipped until retry_after has passed
        harness.clock.advance(30.0)
        await harness.refresh()
        assert await harness.run(in_recovery) is True

    async def test_a_poll_that_cannot_connect_marks_the_replica_down(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(retry_after=30.0)
        replica_pair.stop_replica()
        try:
            await harness.refresh()
            (status,) = harness.router.statuses()
            assert not status.healthy
            assert "could not be polled" in (status.error or "")
            assert await harness.run(in_recovery) is False
        finally:
            replica_pair.start_replica()

    async def test_a_server_not_in_recovery_is_never_used_as_a_replica(self, replica_pair: ReplicaPair) -> None:
        primary = sa.create_engine(url(replica_pair.primary_url, "psycopg"))
        promoted = sa.create_engine(url(replica_pair.primary_url, "psycopg"))  # stands in for a promoted replica
        try:
            router = ReplicaRouter(primary=primary, replicas=[promoted])
            with router.sessionmaker()() as session:
                assert session.get_bind(clause=sa.select(1)) is primary
            (status,) = router.statuses()
            assert not status.healthy
            assert "not in recovery" in (status.error or "")
        finally:
            primary.dispose()
            promoted.dispose()

    async def test_the_cache_is_polled_at_most_once_per_interval(
        self, make: Callable[..., Harness], replica_pair: ReplicaPair
    ) -> None:
        harness = make(poll_interval=1.0)
        await harness.run(in_recovery)
        (first,) = harness.router.statuses()
        await harness.run(in_recovery)
        assert harness.router.statuses() == [first]
        harness.clock.advance(1.0)
        await harness.run(in_recovery)
        (second,) = harness.router.statuses()
        assert second.checked_at == first.checked_at + 1.0  # type: ignore[operator]


class TestRoutedSessionDirectly:
    async def test_an_async_session_routes_like_a_sync_one(self, replica_pair: ReplicaPair) -> None:
        primary = create_async_engine(url(replica_pair.primary_url, "asyncpg"))
        replica = create_async_engine(url(replica_pair.replica_url, "asyncpg"))
        try:
            router = ReplicaRouter(primary=primary, replicas=[replica], **UNLIMITED)  # type: ignore[arg-type]
            async with router.async_sessionmaker()() as session:
                assert isinstance(session.sync_session, RoutedSession)
                assert await session.scalar(IN_RECOVERY) is True
                session.add(Note(body=unique()))
                await session.flush()
                assert await session.scalar(IN_RECOVERY) is False
                await session.commit()
                assert session.sync_session.floor is not None
        finally:
            await primary.dispose()
            await replica.dispose()
