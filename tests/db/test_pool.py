"""Pool metrics on real pools (SQLite file, PostgreSQL via asyncpg) and the sizing hint."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from overdrive.db import PoolMonitor, pool_size_hint
from overdrive.exceptions import ConfigurationError

pytestmark = pytest.mark.anyio


def test_checkouts_overflow_peak_and_timeouts_on_a_saturated_pool(tmp_path: Path) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'p.sqlite3'}", poolclass=QueuePool, pool_size=2, max_overflow=1, pool_timeout=0.2
    )
    monitor = PoolMonitor(engine)
    held = [engine.connect() for _ in range(3)]
    stats = monitor.stats()
    assert (stats.size, stats.checked_out, stats.overflow, stats.max_overflow) == (2, 3, 1, 1)
    assert (stats.checkouts, stats.connects, stats.peak_checked_out) == (3, 3, 3)
    assert stats.saturated
    with pytest.raises(sa.exc.TimeoutError):
        engine.connect()
    released = threading.Event()

    def release_soon() -> None:
        released.wait(5)
        held[0].close()

    threading.Thread(target=release_soon).start()
    released.set()
    waited = engine.connect()  # gets the connection the thread gives back
    stats = monitor.stats()
    assert stats.timeouts == 1
    assert stats.waits == 5
    assert stats.wait_max_ms >= 150  # the timed-out call waited pool_timeout
    for conn in (*held[1:], waited):
        conn.close()
    assert monitor.stats().checked_out == 0
    assert monitor.stats().idle == 2
    hint = pool_size_hint(workers=1, database_cores=1, observed=monitor.stats())
    assert any("timed out" in w for w in hint.warnings)
    monitor.close()
    monitor.close()
    with engine.connect():
        pass
    assert monitor.stats().checkouts == 4  # no longer counted
    engine.dispose()


@pytest.mark.integration
async def test_waits_of_an_async_pool_under_contention(postgres_url: str) -> None:
    engine = create_async_engine(
        postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=2, max_overflow=0
    )
    monitor = PoolMonitor(engine)

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("select pg_sleep(0.05)"))

    await asyncio.gather(*(hold() for _ in range(8)))
    stats = monitor.stats()
    assert stats.checkouts == 8
    assert stats.connects == 2
    assert stats.peak_checked_out == 2
    assert stats.saturated
    assert stats.wait_p95_ms >= 100  # the last callers queue behind three rounds of 50 ms
    hint = pool_size_hint(workers=1, database_cores=1, observed=stats)
    assert any("every connection was in use" in w for w in hint.warnings)
    monitor.close()
    await engine.dispose()


def test_pools_without_a_size_report_what_they_can(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'n.sqlite3'}", poolclass=NullPool)
    monitor = PoolMonitor(engine)
    with engine.connect():
        pass
    stats = monitor.stats()
    assert stats.size is None
    assert not stats.saturated
    assert (stats.checkouts, stats.connects) == (1, 1)
    monitor.close()


def test_the_sizing_hint_follows_the_budget_and_the_server_limit() -> None:
    hint = pool_size_hint(workers=4, database_cores=8)
    assert (hint.pool_size, hint.max_overflow, hint.total) == (4, 2, 24)
    assert hint.warnings == []
    tight = pool_size_hint(workers=4, database_cores=8, max_connections=20)
    assert tight.total <= 17
    assert tight.max_overflow == 0
    crowded = pool_size_hint(workers=32, database_cores=2, max_connections=20)
    assert crowded.pool_size == 1
    assert any("PgBouncer" in w for w in crowded.warnings)
    assert any("refused" in w for w in crowded.warnings)
    with pytest.raises(ConfigurationError, match="at least 1"):
        pool_size_hint(workers=0, database_cores=4)
