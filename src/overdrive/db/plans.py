"""EXPLAIN a captured statement on PostgreSQL or SQLite: its plan, one cost figure, and warnings in plain words.

PostgreSQL plans come from ``EXPLAIN (FORMAT JSON)`` and cost is the planner's total cost. SQLite's
``EXPLAIN QUERY PLAN`` has no cost, so the statement is run once (inside a savepoint that is rolled back) while a
progress handler counts virtual-machine steps: a deterministic measure of work, unlike wall time.

`explain` only sends statements through the connection it is given and never begins or ends a transaction, so it
is safe inside an ``after_cursor_execute`` handler; its own statements fire the connection's events too (on SQLite
the explained statement itself runs again), so such a handler must ignore them. Async code calls it as
``await conn.run_sync(explain, sample)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from overdrive.db import _postgres, _sqlite
from overdrive.db._placeholders import inline
from overdrive.exceptions import ExplainError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from overdrive.db.sample import QuerySample

__all__ = ["ExplainOptions", "Plan", "PlanWarning", "explain"]

WarningKind = Literal["seq_scan", "sort", "deep_offset"]


@dataclass(frozen=True, kw_only=True)
class ExplainOptions:
    """What `explain` runs and what it warns about.

    Attributes:
        analyze: PostgreSQL only: ``EXPLAIN ANALYZE`` a SELECT inside a savepoint that is rolled back.
            Other statements are never executed by PostgreSQL's explain.
        measure: SQLite only: run the statement (rolled back) to count VM steps; False leaves `cost` None.
        seq_scan_rows: warn about a sequential scan of a table with more rows than this.
        max_offset: warn about an OFFSET deeper than this.

    """

    analyze: bool = False
    measure: bool = True
    seq_scan_rows: int = 10_000
    max_offset: int = 1_000


@dataclass(frozen=True, kw_only=True)
class PlanWarning:
    """A problem seen in a plan, with a sentence saying what it is."""

    kind: WarningKind
    message: str
    table: str | None = None


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A statement's plan.

    Attributes:
        dialect: ``postgresql`` or ``sqlite``.
        raw: PostgreSQL's JSON plan (a list), or SQLite's query-plan rows as ``(id, parent, detail)`` tuples.
        cost: the planner's total cost (PostgreSQL) or the VM steps it took to run (SQLite).
        cost_unit: what `cost` counts.
        warnings: problems found in the plan.

    """

    dialect: str
    raw: Any
    cost: float | None
    cost_unit: str
    warnings: tuple[PlanWarning, ...] = ()


def explain(connection: Connection, sample: QuerySample, options: ExplainOptions | None = None) -> Plan:
    """Explain one captured statement on the connection's database.

    Args:
        connection: a sync SQLAlchemy connection to PostgreSQL or SQLite.
        sample: the statement and parameters, in the connection driver's paramstyle.
        options: what to run and warn about; the defaults when None.

    Returns:
        The plan, its cost and warnings.

    Raises:
        ExplainError: the database cannot explain the statement, or is neither PostgreSQL nor SQLite.

    """
    options = options or ExplainOptions()
    dialect = connection.dialect.name
    cost: float | None
    if dialect == "postgresql":
        raw, cost, warnings = _postgres.plan(connection, sample, analyze=options.analyze, rows=options.seq_scan_rows)
        unit = "planner cost"
    elif dialect == "sqlite":
        raw, cost, warnings = _sqlite.plan(connection, sample, measure=options.measure, rows=options.seq_scan_rows)
        unit = "VM steps"
    else:
        msg = f"EXPLAIN analysis supports PostgreSQL and SQLite, not {dialect}."
        raise ExplainError(msg)
    found = [
        PlanWarning(kind=cast("WarningKind", kind), table=table, message=message) for kind, table, message in warnings
    ]
    offset = _offset(sample, dialect)
    if offset is not None and offset > options.max_offset:
        message = (
            f"OFFSET {offset} makes the database read and discard {offset} rows before the first one it returns; "
            "paginate by key instead (overdrive.db.paginate)."
        )
        found.append(PlanWarning(kind="deep_offset", message=message))
    return Plan(dialect=dialect, raw=raw, cost=cost, cost_unit=unit, warnings=tuple(found))


def _offset(sample: QuerySample, dialect: str) -> int | None:
    try:
        tree = sqlglot.parse_one(inline(sample), read="postgres" if dialect == "postgresql" else "sqlite")
    except (SqlglotError, ValueError):
        return None
    offsets = [
        int(node.expression.this)
        for node in tree.find_all(exp.Offset)
        if isinstance(node.expression, exp.Literal) and node.expression.this.isdigit()
    ]
    return max(offsets, default=None)
