"""The index advisor: propose the indexes that make captured statements cheapest, each one verified first.

For every statement, candidates are read off its SQL (equality columns, then the ORDER BY or a range column;
partial indexes on literal constants; join keys). Candidates an existing index already serves are skipped. The
rest are tried: on PostgreSQL as HypoPG hypothetical indexes (nothing is built), on SQLite as real indexes inside
a savepoint that is always rolled back. A candidate is kept when it cuts the statement's cost by at least
`min_improvement`; the best one per statement is advised, the others are listed as alternatives, and an index
that is best for several statements is one advice naming them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from overdrive.db import _postgres, _sqlite
from overdrive.db._candidates import Dialect, IndexCandidate, IndexColumn, candidates, statement_kind
from overdrive.db._placeholders import inline
from overdrive.db.sample import QuerySample
from overdrive.exceptions import AdvisorError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

__all__ = ["IndexAdvice", "IndexCandidate", "IndexColumn", "QueryGain", "advise"]

Key = tuple[str, tuple[IndexColumn, ...], str | None]


@dataclass(frozen=True, kw_only=True)
class QueryGain:
    """What an index does for one statement.

    Attributes:
        position: the statement's index in the samples given to `advise`.
        sample: the statement.
        cost_before: its cost now (planner cost on PostgreSQL, VM steps on SQLite).
        cost_after: its cost with the index.

    """

    position: int
    sample: QuerySample
    cost_before: float
    cost_after: float

    @property
    def improvement(self) -> float:
        """The share of the cost the index removes, 0 to 1."""
        return 1 - self.cost_after / self.cost_before


@dataclass(frozen=True, kw_only=True)
class IndexAdvice:
    """One index to create and the statements it makes cheaper.

    Attributes:
        index: the index.
        statement: the DDL to run (``CREATE INDEX CONCURRENTLY`` on PostgreSQL).
        queries: the statements it is the best index for.
        alternatives: other indexes that also passed for those statements, best first.

    """

    index: IndexCandidate
    statement: str
    queries: tuple[QueryGain, ...]
    alternatives: tuple[IndexCandidate, ...] = ()

    @property
    def cost_before(self) -> float:
        """The summed cost of its statements now."""
        return sum(query.cost_before for query in self.queries)

    @property
    def cost_after(self) -> float:
        """The summed cost of its statements with the index."""
        return sum(query.cost_after for query in self.queries)


class _Backend(Protocol):
    """What the advisor needs from a database; `_postgres` and `_sqlite` are the two implementations."""

    def prepare(self, connection: Connection) -> None: ...
    def columns(self, connection: Connection, table: str) -> frozenset[str]: ...
    def existing_indexes(self, connection: Connection, table: str) -> list[IndexCandidate]: ...
    def cost(self, connection: Connection, sample: QuerySample) -> float: ...
    def hypothetical_cost(self, connection: Connection, sample: QuerySample, candidate: IndexCandidate) -> float: ...


@dataclass
class _Schema:
    """Columns and existing indexes per table, read once per `advise` call."""

    connection: Connection
    backend: _Backend
    _columns: dict[str, frozenset[str]] = field(default_factory=dict)
    _indexes: dict[str, list[IndexCandidate]] = field(default_factory=dict)

    def columns(self, table: str) -> frozenset[str]:
        if table not in self._columns:
            self._columns[table] = self.backend.columns(self.connection, table)
        return self._columns[table]

    def covered(self, candidate: IndexCandidate) -> bool:
        if candidate.table not in self._indexes:
            self._indexes[candidate.table] = self.backend.existing_indexes(self.connection, candidate.table)
        return any(_serves(index, candidate) for index in self._indexes[candidate.table])


def _serves(index: IndexCandidate, candidate: IndexCandidate) -> bool:
    """Whether `index` serves every scan `candidate` would: its leading columns match, in order and direction."""
    if _normal(index.where) == _normal(candidate.where):
        return _prefix(index.columns, candidate)
    if candidate.where is None or index.where is not None:
        return False
    # A full index on (c, a, b) serves (a, b) WHERE c = 1: the constant columns lead, in any order.
    fixed = _where_columns(candidate)
    head = {column.name for column in index.columns[: len(fixed)]}
    return head == fixed and _prefix(index.columns[len(fixed) :], candidate)


def _normal(predicate: str | None) -> str:
    return " ".join((predicate or "").split()).lower()


def _where_columns(candidate: IndexCandidate) -> set[str]:
    return {part.split("=")[0].strip().strip('"') for part in (candidate.where or "").split(" AND ")}


def _prefix(have: tuple[IndexColumn, ...], candidate: IndexCandidate) -> bool:
    """Whether `have` starts with the candidate's columns, read forwards or backwards after its equalities."""
    wanted = candidate.columns
    head = have[: len(wanted)]
    if len(head) < len(wanted) or [c.name for c in head] != [c.name for c in wanted]:
        return False
    pairs = list(zip(head, wanted, strict=True))[candidate.equalities :]
    return all(h.descending == w.descending for h, w in pairs) or all(h.descending != w.descending for h, w in pairs)


def _backend(connection: Connection) -> tuple[Dialect, _Backend]:
    name = connection.dialect.name
    if name == "postgresql":
        return "postgresql", _postgres
    if name == "sqlite":
        return "sqlite", _sqlite
    msg = f"The index advisor supports PostgreSQL and SQLite, not {name}."
    raise AdvisorError(msg)


def advise(
    connection: Connection,
    samples: Iterable[QuerySample],
    *,
    min_improvement: float = 0.5,
    partial_indexes: bool = True,
) -> list[IndexAdvice]:
    """Propose indexes for the given statements, most cost saved first.

    Statements other than SELECT, UPDATE and DELETE are skipped. On PostgreSQL the HypoPG extension is created
    when the server has it and it is missing (inside the caller's transaction: roll back to undo it); on SQLite
    every trial index is rolled back, also on error.

    Args:
        connection: a sync SQLAlchemy connection; async code uses ``await conn.run_sync(advise, samples)``.
        samples: the statements, in the connection driver's paramstyle.
        min_improvement: the smallest share of a statement's cost an index must remove to be advised.
        partial_indexes: propose partial indexes on literal constants; turn off when literals stand for
            parameters (statements written out by hand).

    Returns:
        One advice per index, ordered by the cost it saves.

    Raises:
        AdvisorError: the database is not supported, or HypoPG is missing on PostgreSQL.
        ConfigurationError: `min_improvement` is not in (0, 1].
        ExplainError: the database cannot explain one of the statements.

    """
    if not 0 < min_improvement <= 1:
        msg = f"min_improvement is a share of the cost between 0 (excluded) and 1, not {min_improvement!r}."
        raise ConfigurationError(msg)
    dialect, backend = _backend(connection)
    backend.prepare(connection)
    schema = _Schema(connection, backend)
    best: dict[Key, list[QueryGain]] = {}
    chosen: dict[Key, IndexCandidate] = {}
    others: dict[Key, dict[Key, tuple[float, IndexCandidate]]] = {}
    for position, sample in enumerate(samples):
        gains = _trials(schema, dialect, sample, min_improvement=min_improvement, partial_indexes=partial_indexes)
        if not gains:
            continue
        winner, gain = gains[0]
        key = winner.canonical()
        chosen.setdefault(key, winner)
        best.setdefault(key, []).append(
            QueryGain(position=position, sample=sample, cost_before=gain[0], cost_after=gain[1])
        )
        for candidate, (_, after) in gains[1:]:
            others.setdefault(key, {}).setdefault(candidate.canonical(), (after, candidate))
    advice = [
        IndexAdvice(
            index=chosen[key],
            statement=chosen[key].ddl(dialect),
            queries=tuple(queries),
            alternatives=tuple(c for _, c in sorted(others.get(key, {}).values()) if c.canonical() not in chosen),
        )
        for key, queries in best.items()
    ]
    return sorted(advice, key=lambda a: (a.cost_after - a.cost_before, a.index.name))


def _trials(
    schema: _Schema, dialect: Dialect, sample: QuerySample, *, min_improvement: float, partial_indexes: bool
) -> list[tuple[IndexCandidate, tuple[float, float]]]:
    """The candidates that pass for one statement, best first, with the cost before and after."""
    if statement_kind(sample.statement, dialect) == "other":
        return []
    proposed = [
        candidate
        for candidate in candidates(sample.statement, dialect, schema.columns)
        if schema.columns(candidate.table) and (partial_indexes or candidate.where is None)
        if all(column.name in schema.columns(candidate.table) for column in candidate.columns)
        if not schema.covered(candidate)
    ]
    if not proposed:
        return []
    literal = QuerySample(inline(sample))
    before = schema.backend.cost(schema.connection, literal)
    if before <= 0:
        return []
    passed = []
    for candidate in proposed:
        after = schema.backend.hypothetical_cost(schema.connection, literal, candidate)
        if (before - after) / before >= min_improvement:
            passed.append((candidate, (before, after)))
    passed.sort(key=lambda item: (item[1][1], len(item[0].columns), item[0].name))
    return _partial_first(passed)


def _partial_first(
    passed: list[tuple[IndexCandidate, tuple[float, float]]],
) -> list[tuple[IndexCandidate, tuple[float, float]]]:
    """Put a partial index ahead of the full index it equals (its constant columns first): same scans, fewer rows.

    Planner estimates for hypothetical partial indexes are rough, so the full form often looks a little cheaper.
    """
    if not passed or passed[0][0].where is not None:
        return passed
    best = passed[0][0]
    for item in passed[1:]:
        if item[0].where is not None and _serves(best, item[0]):
            return [item, *(other for other in passed if other is not item)]
    return passed
