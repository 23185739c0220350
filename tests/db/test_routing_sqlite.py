"""With SQLite (any primary but PostgreSQL) routing degenerates: every statement goes to the primary."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from overdrive.db import ConsistencyScope, ReplicaRouter, RoutedSession
from overdrive.db._lsn import UNKNOWN_LSN
from overdrive.exceptions import ConfigurationError
from tests.db.replication import Note, NoteBase

pytestmark = pytest.mark.anyio


class TestSQLite:
    def test_sync_reads_and_writes_go_to_the_primary(self, tmp_path: Path) -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'notes.sqlite3'}")
        NoteBase.metadata.create_all(engine)
        router = ReplicaRouter(primary=engine)
        with router.track() as scope, router.sessionmaker()() as session:
            assert isinstance(session, RoutedSession)
            assert session.get_bind(clause=sa.select(Note)) is engine
            session.add(Note(body="hello"))
            session.commit()
            assert session.scalars(sa.select(Note.body)).all() == ["hello"]
            assert session.floor is None
        # No WAL position exists, so no token is due.
        assert (scope.floor, scope.wrote) == (None, False)
        engine.dispose()

    async def test_async_reads_and_writes_go_to_the_primary(self, tmp_path: Path) -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'notes.sqlite3'}")
        async with engine.begin() as conn:
            await conn.run_sync(NoteBase.metadata.create_all)
        router = ReplicaRouter(primary=engine)
        async with router.async_sessionmaker()() as session:
            assert session.sync_session.get_bind(clause=sa.select(Note)) is engine.sync_engine
            session.add(Note(body="hello"))
            await session.commit()
            assert (await session.scalars(sa.select(Note.body))).all() == ["hello"]
        await engine.dispose()

    def test_replicas_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            ReplicaRouter(primary=sa.create_engine("sqlite://"), replicas=[sa.create_engine("sqlite://")])


class TestConfiguration:
    def test_sync_and_async_engines_do_not_mix(self) -> None:
        with pytest.raises(ConfigurationError, match="all be sync engines or all be async"):
            ReplicaRouter(primary=sa.create_engine("sqlite://"), replicas=[create_async_engine("sqlite+aiosqlite://")])

    def test_each_kind_of_router_makes_its_own_kind_of_session(self) -> None:
        sync_router = ReplicaRouter(primary=sa.create_engine("sqlite://"))
        async_router = ReplicaRouter(primary=create_async_engine("sqlite+aiosqlite://"))
        with pytest.raises(ConfigurationError, match="use sessionmaker"):
            sync_router.async_sessionmaker()
        with pytest.raises(ConfigurationError, match="use async_sessionmaker"):
            async_router.sessionmaker()

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"poll_interval": 0}, "poll_interval must be positive"),
            ({"retry_after": -1}, "retry_after not negative"),
            ({"balance": "random"}, "balance must be"),
        ],
    )
    def test_bad_settings_are_refused(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            ReplicaRouter(primary=sa.create_engine("sqlite://"), **options)  # type: ignore[arg-type]

    def test_scopes_nest_and_unwind(self) -> None:
        router = ReplicaRouter(primary=sa.create_engine("sqlite://"))
        assert router.current_scope() is None
        with router.track(5) as outer:
            with router.track() as inner:
                assert router.current_scope() is inner
            assert router.current_scope() is outer
            assert outer.floor == 5
        assert router.current_scope() is None


class TestConsistencyScope:
    def test_the_floor_rises_with_writes_and_never_falls(self) -> None:
        scope = ConsistencyScope()
        scope.note_write(100)
        scope.note_write(50)  # a commit whose position was read late, by a concurrent task
        assert (scope.floor, scope.wrote) == (100, True)

    def test_a_known_position_replaces_an_unknown_one(self) -> None:
        scope = ConsistencyScope(floor=UNKNOWN_LSN)
        scope.note_write(100)
        assert scope.floor == 100

    def test_an_unknown_position_keeps_reads_on_the_primary(self) -> None:
        scope = ConsistencyScope(floor=100)
        scope.note_write(UNKNOWN_LSN)
        assert scope.floor == UNKNOWN_LSN
