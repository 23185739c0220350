"""Fixtures for overdrive.db: the same seeded table on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tests import services
from tests.db import replication
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


# ---------------------------------------------------------------- EXPLAIN and the index advisor

PRODUCT_ROWS = 50_000
PRODUCTS_DDL = (
    "CREATE TABLE products (id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL, status VARCHAR(20) NOT NULL, "
    "price_cents INTEGER NOT NULL, created_at INTEGER NOT NULL, name VARCHAR(100) NOT NULL)"
)
# 50 categories of 1,000 products; 1 in 100 archived; prices and creation times spread by multiplicative hashing.
PRODUCT_ROW_SQL = (
    "SELECT i, i % 50 + 1, CASE WHEN i % 100 = 0 THEN 'archived' ELSE 'active' END, "
    "(i * 7919) % 100000, (i * 104729) % 1000000, 'product ' || i FROM {source}"
)


@pytest.fixture(scope="session")
def products_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the 50k-row `products` table with its primary key only."""
    path = tmp_path_factory.mktemp("advisor") / "products.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(PRODUCTS_DDL)
        numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {PRODUCT_ROWS})"
        source = f"({numbers} SELECT i FROM n)"
        connection.execute("INSERT INTO products " + PRODUCT_ROW_SQL.format(source=source))
    connection.close()
    return path


@pytest.fixture
def products_sqlite(products_template: Path, tmp_path: Path) -> Path:
    """A private copy of the SQLite products file, which the test may change."""
    path = tmp_path / "products.sqlite3"
    shutil.copyfile(products_template, path)
    return path


@pytest.fixture(scope="session")
def products_postgres(postgres_url: str) -> Iterator[str]:
    """A psycopg URL of a database of its own holding the analysed 50k-row `products` table."""
    name = f"overdrive_advisor_{uuid.uuid4().hex[:12]}"
    url = services.create_database(postgres_url, name).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(PRODUCTS_DDL)
            source = f"generate_series(1::bigint, {PRODUCT_ROWS}) AS i"
            insert = "INSERT INTO products " + PRODUCT_ROW_SQL.format(source=source)
            connection.exec_driver_sql(insert, execution_options={"no_parameters": True})
            connection.exec_driver_sql("ANALYZE products")
        yield url
    finally:
        engine.dispose()
        services.drop_database(postgres_url, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def products_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A sync engine on the products table: a private SQLite copy, then the shared PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('products_sqlite')}"
    else:
        url = request.getfixturevalue("products_postgres")
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def placeholder(engine: Engine) -> str:
    """The positional placeholder of the engine's driver."""
    return "?" if engine.dialect.name == "sqlite" else "%s"


# ---------------------------------------------------------------- replica routing


@pytest.fixture(scope="session")
def replica_pair() -> Iterator[services.ReplicaPair]:
    """A throwaway primary with a streaming replica, shared by the replica routing tests."""
    with services.postgres_replica_pair() as pair:
        replication.create_notes(pair)
        yield pair
