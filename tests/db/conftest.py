"""Fixtures for overdrive.db: the same seeded table on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tests import services
from tests.db.models import Base, make_items


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An async SQLAlchemy URL: a SQLite file, then a fresh PostgreSQL database dropped at the end."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'items.sqlite3'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    name = f"overdrive_db_{uuid.uuid4().hex[:12]}"
    url = services.create_database(server, name)
    try:
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        services.drop_database(server, name)


class StatementLog:
    """Records the SQL of every statement an engine sends."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def clear(self) -> None:
        self.statements.clear()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a freshly created and seeded `items` table."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine) as session, session.begin():
            session.add_all(make_items())
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[StatementLog]:
    """The statements `engine` sends from now on."""
    log = StatementLog()
    event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        yield log
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", log)


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session
