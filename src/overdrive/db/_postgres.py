"""PostgreSQL: JSON plans, planner cost, existing indexes from the catalog, and HypoPG's hypothetical indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from overdrive.db._candidates import IndexCandidate, IndexColumn, statement_kind
from overdrive.db._send import quote, send
from overdrive.exceptions import AdvisorError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from overdrive.db.sample import QuerySample

__all__ = [
    "columns",
    "cost",
    "existing_indexes",
    "hypopg_available",
    "hypopg_installed",
    "hypothetical_cost",
    "plan",
    "prepare",
]

Finding = tuple[str, str | None, str]
HYPOPG_HINT = (
    "The index advisor needs the HypoPG extension on PostgreSQL. Install it on the database server "
    "(Debian: `scripts/install-system-deps postgresql-15-hypopg`, or your distribution's postgresql-<major>-hypopg), "
    "then run `CREATE EXTENSION hypopg;` in the database as a user allowed to."
)
_SAVEPOINT = "overdrive_explain"
_INDEXES = text(
    """
    SELECT c.relname, k.n, a.attname, (i.indoption[k.n - 1] & 1) = 1, pg_get_expr(i.indpred, i.indrelid)
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
    WHERE i.indrelid = to_regclass(quote_ident(:table)) AND k.n <= i.indnkeyatts
    ORDER BY c.relname, k.n
    """
)


def _json_plan(connection: Connection, sample: QuerySample, prefix: str) -> list[Any]:
    value = send(connection, sample, prefix).scalar_one()
    return orjson.loads(value) if isinstance(value, str | bytes) else list(value)


def cost(connection: Connection, sample: QuerySample) -> float:
    """The planner's total cost of the statement."""
    return float(_json_plan(connection, sample, "EXPLAIN (FORMAT JSON) ")[0]["Plan"]["Total Cost"])


def plan(connection: Connection, sample: QuerySample, *, analyze: bool, rows: int) -> tuple[Any, float, list[Finding]]:
    """The JSON plan, its total cost and findings; with `analyze`, SELECTs run inside a rolled-back savepoint."""
    if analyze and statement_kind(sample.statement, "postgresql") == "select":
        connection.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
        try:
            raw = _json_plan(connection, sample, "EXPLAIN (ANALYZE, FORMAT JSON) ")
        finally:
            connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            connection.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    else:
        raw = _json_plan(connection, sample, "EXPLAIN (FORMAT JSON) ")
    root = raw[0]["Plan"]
    return raw, float(root["Total Cost"]), _findings(connection, root, rows)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _findings(connection: Connection, root: dict[str, Any], rows: int) -> list[Finding]:
    found: list[Finding] = []
    scanned: set[str] = set()
    for node in _nodes(root):
        kind = node["Node Type"]
        if kind == "Seq Scan" and node["Relation Name"] not in scanned:
            table = node["Relation Name"]
            scanned.add(table)
            size = table_rows(connection, table, rows + 1)
            if size > rows:
                message = f"Sequential scan of {table} (about {size:,} rows): every row is read to find the matches."
                found.append(("seq_scan", table, message))
        elif kind == "Sort":
            scans = [n["Relation Name"] for n in _nodes(node) if n["Node Type"] == "Seq Scan"]
            if scans:
                keys = ", ".join(node.get("Sort Key", ()))
                message = f"Sort by {keys} over a sequential scan of {scans[0]}: no index provides this order."
                found.append(("sort", scans[0], message))
    return found


def table_rows(connection: Connection, table: str, limit: int) -> int:
    """The table's row count from the statistics, else counted up to `limit`."""
    estimate = connection.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(quote_ident(:table))"), {"table": table}
    ).scalar()
    if estimate is not None and estimate >= 0:
        return int(estimate)
    counted = connection.exec_driver_sql(f"SELECT count(*) FROM (SELECT 1 FROM {quote(table)} LIMIT {int(limit)}) s")  # noqa: S608 - quoted name
    return int(counted.scalar_one())


def columns(connection: Connection, table: str) -> frozenset[str]:
    """The table's column names; empty when there is no such table."""
    names = connection.execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(:table)) "
            "AND attnum > 0 AND NOT attisdropped"
        ),
        {"table": table},
    ).scalars()
    return frozenset(names)


def existing_indexes(connection: Connection, table: str) -> list[IndexCandidate]:
    """The table's indexes; an expression column appears under the name ``<expression>``, which matches nothing."""
    found: dict[str, tuple[list[IndexColumn], str | None]] = {}
    for name, _, column, descending, where in connection.execute(_INDEXES, {"table": table}):
        found.setdefault(name, ([], where))[0].append(IndexColumn(column or "<expression>", bool(descending)))
    return [IndexCandidate(table=table, columns=tuple(cols), where=where) for cols, where in found.values()]


def prepare(connection: Connection) -> None:
    """Make HypoPG usable on this connection, creating the extension when the server has it.

    Raises:
        AdvisorError: HypoPG is not installed on the server, or the extension cannot be created.

    """
    if hypopg_installed(connection):
        return
    if not hypopg_available(connection):
        raise AdvisorError(HYPOPG_HINT)
    try:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS hypopg")
    except DBAPIError as exc:
        msg = f"{HYPOPG_HINT} Creating the extension failed: {exc.orig}"
        raise AdvisorError(msg) from exc


def hypopg_installed(connection: Connection) -> bool:
    """Whether the HypoPG extension exists in this database."""
    return connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")).first() is not None


def hypopg_available(connection: Connection) -> bool:
    """Whether the server has HypoPG's files, so that CREATE EXTENSION can work."""
    return connection.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'")).first() is not None


def hypothetical_cost(connection: Connection, sample: QuerySample, candidate: IndexCandidate) -> float:
    """The statement's planner cost were `candidate` to exist; the hypothetical index is dropped afterwards."""
    created = connection.execute(
        text("SELECT indexrelid FROM hypopg_create_index(:definition)"), {"definition": candidate.definition()}
    ).scalar_one()
    try:
        return cost(connection, sample)
    finally:
        connection.execute(text("SELECT hypopg_drop_index(:oid)"), {"oid": created})
