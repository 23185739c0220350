"""SQLite: query-plan rows, VM steps as the cost, existing indexes from PRAGMAs, and trial indexes rolled back.

The steps are counted by ``set_progress_handler`` on the driver's connection: the ``sqlite3`` connection itself,
or for aiosqlite through its own ``set_progress_handler``, which installs the handler on its worker thread.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.util import await_only

from overdrive.db._candidates import IndexCandidate, IndexColumn, statement_kind
from overdrive.db._send import quote, send

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Connection

    from overdrive.db.sample import QuerySample

__all__ = ["columns", "cost", "existing_indexes", "hypothetical_cost", "plan", "prepare"]

Finding = tuple[str, str | None, str]
STEP = 1  # one callback per VM instruction: an exact count (coarser counts drift with statement reuse)
_SCAN = re.compile(r"^SCAN (?:TABLE )?(?P<table>\S+)(?: AS \S+)?(?P<using> USING .*)?$")
_SAVEPOINT = "overdrive_explain"
_TRIAL = "overdrive_advisor"


@contextmanager
def _savepoint(connection: Connection, name: str) -> Iterator[None]:
    connection.exec_driver_sql(f"SAVEPOINT {name}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"ROLLBACK TO {name}")
        connection.exec_driver_sql(f"RELEASE {name}")


@contextmanager
def _progress(connection: Connection, handler: Callable[[], int]) -> Iterator[None]:
    driver: Any = connection.connection.driver_connection
    if isinstance(driver, sqlite3.Connection):
        driver.set_progress_handler(handler, STEP)
        try:
            yield
        finally:
            driver.set_progress_handler(None, 0)
        return
    # aiosqlite: the sqlite3 connection belongs to its worker thread; install the handler there.
    await_only(driver.set_progress_handler(handler, STEP))
    try:
        yield
    finally:
        await_only(driver.set_progress_handler(None, 0))


def cost(connection: Connection, sample: QuerySample) -> float:
    """VM steps to run the statement to completion; anything but a SELECT runs in a rolled-back savepoint."""
    ticks = 0

    def tick() -> int:
        nonlocal ticks
        ticks += 1
        return 0

    if statement_kind(sample.statement, "sqlite") == "select":
        with _progress(connection, tick):
            send(connection, sample).fetchall()
    else:
        with _savepoint(connection, _SAVEPOINT), _progress(connection, tick):
            send(connection, sample)
    return float(ticks * STEP)


def plan(
    connection: Connection, sample: QuerySample, *, measure: bool, rows: int
) -> tuple[Any, float | None, list[Finding]]:
    """The query-plan rows ``(id, parent, detail)``, the VM steps (when measured) and findings."""
    rows_: list[tuple[Any, ...]] = [tuple(row) for row in send(connection, sample, "EXPLAIN QUERY PLAN ")]
    raw = [(row[0], row[1], row[3]) for row in rows_]
    steps = cost(connection, sample) if measure else None
    return raw, steps, _findings(connection, raw, rows)


def _findings(connection: Connection, raw: list[tuple[int, int, str]], rows: int) -> list[Finding]:
    found: list[Finding] = []
    tables = _tables(connection)
    for _, _, detail in raw:
        scan = _SCAN.match(detail)
        if scan and not scan.group("using") and scan.group("table") in tables:
            table = scan.group("table")
            size = table_rows(connection, table, rows + 1)
            if size > rows:
                message = (
                    f"Sequential scan of {table} (more than {rows:,} rows): every row is read to find the matches."
                )
                found.append(("seq_scan", table, message))
        elif detail.startswith("USE TEMP B-TREE FOR") and "ORDER BY" in detail:
            found.append(("sort", None, "Sort in a temporary B-tree for ORDER BY: no index provides this order."))
    return found


def _tables(connection: Connection) -> set[str]:
    return set(connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())


def table_rows(connection: Connection, table: str, limit: int) -> int:
    """The table's row count, counted up to `limit`."""
    counted = connection.exec_driver_sql(f"SELECT count(*) FROM (SELECT 1 FROM {quote(table)} LIMIT {int(limit)})")  # noqa: S608 - quoted name
    return int(counted.scalar_one())


def columns(connection: Connection, table: str) -> frozenset[str]:
    """The table's column names; empty when there is no such table."""
    return frozenset(row[1] for row in connection.exec_driver_sql(f"PRAGMA table_info({quote(table)})"))


def existing_indexes(connection: Connection, table: str) -> list[IndexCandidate]:
    """The table's indexes, with the INTEGER PRIMARY KEY (the rowid) as one."""
    found = []
    for _, name, _, _, partial in connection.exec_driver_sql(f"PRAGMA index_list({quote(table)})").all():
        keys = [
            IndexColumn(row[2] or "<expression>", bool(row[3]))
            for row in connection.exec_driver_sql(f"PRAGMA index_xinfo({quote(name)})")
            if row[5]
        ]
        where = _predicate(connection, name) if partial else None
        found.append(IndexCandidate(table=table, columns=tuple(keys), where=where))
    info = connection.exec_driver_sql(f"PRAGMA table_info({quote(table)})").all()
    primary = [row for row in info if row[5]]
    if len(primary) == 1 and str(primary[0][2]).upper() == "INTEGER":
        found.append(IndexCandidate(table=table, columns=(IndexColumn(primary[0][1]),)))
    return found


def _predicate(connection: Connection, index: str) -> str | None:
    sql = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).scalar()
    parts = re.split(r"\bWHERE\b", sql or "", flags=re.IGNORECASE)
    return parts[-1].strip() if len(parts) > 1 else None


def prepare(connection: Connection) -> None:
    """Nothing to prepare: SQLite tries real indexes inside a savepoint."""


def hypothetical_cost(connection: Connection, sample: QuerySample, candidate: IndexCandidate) -> float:
    """VM steps with `candidate` built inside a savepoint that is always rolled back (SQLite DDL is transactional)."""
    with _savepoint(connection, _TRIAL):
        connection.exec_driver_sql(candidate.definition(candidate.name))
        return cost(connection, sample)
