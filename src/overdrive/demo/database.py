"""Engines for the shop: the embedded SQLite file or PostgreSQL, with the same behaviour on both.

SQLite gets the settings any serious deployment of it uses (WAL, a busy timeout and foreign keys), and write
transactions take the write lock up front (`BEGIN IMMEDIATE`), because a deferred transaction that upgrades from
read to write fails at once with "database is locked" when another writer is ahead of it, instead of waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from overdrive.demo.settings import ShopSettings

__all__ = ["create_engine", "is_sqlite", "writer"]

_BEGIN_OPTION = "overdrive_sqlite_begin"


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_engine(settings: ShopSettings, **engine_options: Any) -> AsyncEngine:
    """Create the async engine for the shop's database.

    Args:
        settings: the shop settings; their database URL picks the backend.
        **engine_options: passed on to `create_async_engine` (pool size and the like).

    Returns:
        An engine; for SQLite, the data directory exists once this returns.

    """
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return create_async_engine(url, **{"pool_size": 10, "max_overflow": 10, **engine_options})
    database = url.split(":///", 1)[1] if ":///" in url else ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **engine_options)
    _install_sqlite_hooks(engine)
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, but its transactions take SQLite's write lock when they begin."""
    if not is_sqlite(engine):
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
