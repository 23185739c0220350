"""Drive a throwaway replica pair from tests: a `notes` table, paused replay, waiting for replay to catch up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.services import ReplicaPair

REPLAY_TIMEOUT = 20.0


class NoteBase(DeclarativeBase):
    pass


class Note(NoteBase):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


IN_RECOVERY = sa.select(sa.func.pg_is_in_recovery())


def url(server: str, driver: str) -> str:
    """``server`` (a ``postgresql://`` URL) for SQLAlchemy with ``driver`` (psycopg or asyncpg)."""
    return server.replace("postgresql://", f"postgresql+{driver}://", 1)


def create_notes(pair: ReplicaPair) -> None:
    engine = sa.create_engine(url(pair.primary_url, "psycopg"))
    try:
        NoteBase.metadata.create_all(engine)
    finally:
        engine.dispose()
    wait_for_replay(pair)


def _scalar(server: str, query: str) -> object:
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def wait_for_replay(pair: ReplicaPair) -> None:
    """Wait until the replica has replayed everything the primary has inserted into its WAL so far."""
    target = _scalar(pair.primary_url, "SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + REPLAY_TIMEOUT
    query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
    while not _scalar(pair.replica_url, query):
        assert time.monotonic() < deadline, f"The replica did not replay up to {target} in time."
        time.sleep(0.01)


def wait_for_wal_written(pair: ReplicaPair) -> None:
    """Wait until the primary has written out all its WAL (with synchronous_commit=off a commit returns before)."""
    target = _scalar(pair.primary_url, "SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + REPLAY_TIMEOUT
    while not _scalar(pair.primary_url, f"SELECT pg_current_wal_lsn() >= '{target}'::pg_lsn"):
        assert time.monotonic() < deadline, f"The primary did not write its WAL up to {target} in time."
        time.sleep(0.01)


@contextmanager
def replay_paused(pair: ReplicaPair) -> Iterator[None]:
    """Pause WAL replay on the replica; resume it (and wait until it catches up) on exit."""
    _scalar(pair.replica_url, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        _scalar(pair.replica_url, "SELECT pg_wal_replay_resume()")
        wait_for_replay(pair)


def resume_replay(pair: ReplicaPair) -> None:
    """Resume replay now and wait until the replica has caught up."""
    _scalar(pair.replica_url, "SELECT pg_wal_replay_resume()")
    wait_for_replay(pair)
