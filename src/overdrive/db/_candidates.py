"""Candidate indexes read off a statement's SQL: equality columns, then a range or the ORDER BY, and join keys.

The SQL is parsed with sqlglot, so every paramstyle works: a placeholder counts as "some value", a literal
as a constant that a partial index may be built on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["IndexCandidate", "IndexColumn", "candidates", "statement_kind"]

Dialect = Literal["postgresql", "sqlite"]
StatementKind = Literal["select", "update", "delete", "other"]
MAX_COLUMNS = 5
MAX_NAME = 63  # PostgreSQL truncates longer identifiers
_SQLGLOT = {"postgresql": "postgres", "sqlite": "sqlite"}
_RANGES = (exp.GT, exp.GTE, exp.LT, exp.LTE)


@dataclass(frozen=True, order=True)
class IndexColumn:
    """One key column of an index and its sort direction."""

    name: str
    descending: bool = False

    def sql(self) -> str:
        """The column as it appears in CREATE INDEX."""
        return _identifier(self.name) + (" DESC" if self.descending else "")


@dataclass(frozen=True, kw_only=True, order=True)
class IndexCandidate:
    """A B-tree index that might make a statement cheaper.

    Attributes:
        table: the indexed table.
        columns: key columns in index order.
        where: the predicate of a partial index (SQL), or None.
        equalities: how many leading columns the statement compares with ``=`` (their direction is irrelevant);
            not part of the index's identity.

    """

    table: str
    columns: tuple[IndexColumn, ...]
    where: str | None = None
    equalities: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        """A readable, deterministic name: ``ix_<table>_<columns>[_desc]...[_where_<columns>]``."""
        parts = [self.table] + [c.name + ("_desc" if c.descending else "") for c in self.columns]
        if self.where is not None:
            parts += ["where", *(c.name for c in _columns_of(self.where))]
        name = "ix_" + "_".join(parts)
        if len(name) <= MAX_NAME:
            return name
        digest = hashlib.sha1(self.definition().encode(), usedforsecurity=False).hexdigest()[:8]
        return f"{name[: MAX_NAME - 9]}_{digest}"

    def definition(self, name: str = "") -> str:
        """``CREATE INDEX [name] ON table (columns) [WHERE ...]``, as HypoPG and SQLite take it."""
        columns = ", ".join(column.sql() for column in self.columns)
        where = f" WHERE {self.where}" if self.where is not None else ""
        named = f"{_identifier(name)} " if name else ""
        return f"CREATE INDEX {named}ON {_identifier(self.table)} ({columns}){where}"

    def ddl(self, dialect: Dialect) -> str:
        """The statement to apply: ``CREATE INDEX CONCURRENTLY`` on PostgreSQL, plain on SQLite."""
        statement = self.definition(self.name)
        if dialect == "postgresql":
            statement = statement.replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
        return statement + ";"

    def canonical(self) -> tuple[str, tuple[IndexColumn, ...], str | None]:
        """A key equal for indexes that serve the same scans (one is the other read backwards)."""
        head = tuple(IndexColumn(c.name) for c in self.columns[: self.equalities])
        tail = self.columns[self.equalities :]
        if tail and tail[0].descending:
            tail = tuple(IndexColumn(c.name, not c.descending) for c in tail)
        return (self.table, head + tail, self.where)


def _identifier(name: str) -> str:
    if name.isidentifier() and name.islower():
        return name
    return '"' + name.replace('"', '""') + '"'


def _columns_of(predicate: str) -> list[exp.Column]:
    return list(sqlglot.parse_one(predicate).find_all(exp.Column))


def statement_kind(statement: str, dialect: Dialect) -> StatementKind:
    """Whether the statement is a SELECT, an UPDATE, a DELETE, or anything else (including unparsable SQL)."""
    try:
        tree = sqlglot.parse_one(statement, read=_SQLGLOT[dialect])
    except SqlglotError:
        return "other"
    if isinstance(tree, exp.Query):
        return "select"
    if isinstance(tree, exp.Update):
        return "update"
    if isinstance(tree, exp.Delete):
        return "delete"
    return "other"


@dataclass
class _TableUse:
    """How one scope (a SELECT, UPDATE or DELETE) filters and sorts one table."""

    table: str
    equalities: list[str] = field(default_factory=list)
    constants: dict[str, str] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    order: list[IndexColumn] = field(default_factory=list)


def candidates(statement: str, dialect: Dialect, columns_of: Callable[[str], frozenset[str]]) -> list[IndexCandidate]:
    """Every candidate index for ``statement``, in a deterministic order, without duplicates.

    Args:
        statement: SQL in any paramstyle.
        dialect: the database it runs on.
        columns_of: the column names of a table, to place unqualified columns in joins.

    """
    try:
        tree = sqlglot.parse_one(statement, read=_SQLGLOT[dialect])
    except SqlglotError:
        return []
    found: dict[tuple[str, tuple[IndexColumn, ...], str | None], IndexCandidate] = {}
    for scope in (*tree.find_all(exp.Select), *tree.find_all(exp.Update, exp.Delete)):
        for use in _uses(scope, columns_of):
            for candidate in _from_use(use):
                if candidate.columns:
                    found.setdefault(candidate.canonical(), candidate)
    return list(found.values())


def _uses(scope: exp.Expression, columns_of: Callable[[str], frozenset[str]]) -> list[_TableUse]:
    tables = _tables(scope)
    if not tables:
        return []
    uses = {alias: _TableUse(table) for alias, table in tables.items()}

    def resolve(column: exp.Column) -> _TableUse | None:
        if column.table:
            return uses.get(column.table)
        if len(uses) == 1:
            return next(iter(uses.values()))
        owners = [use for use in uses.values() if column.name in columns_of(use.table)]
        return owners[0] if len(owners) == 1 else None

    for predicate in _conjuncts(scope):
        _classify(predicate, resolve)
    _order(scope, resolve)
    return list(uses.values())


def _tables(scope: exp.Expression) -> dict[str, str]:
    """Alias (or name) to table name, for the tables this scope reads directly (not through subqueries)."""
    nodes: list[exp.Expression] = []
    if isinstance(scope, exp.Select):
        source = scope.args.get("from") or scope.args.get("from_")
        if source is not None:
            nodes.append(source.this)
        nodes.extend(join.this for join in scope.args.get("joins") or ())
    else:
        nodes.append(scope.this)
    return {node.alias_or_name: node.name for node in nodes if isinstance(node, exp.Table)}


def _conjuncts(scope: exp.Expression) -> Iterator[exp.Expression]:
    conditions: list[exp.Expression] = []
    where = scope.args.get("where")
    if where is not None:
        conditions.append(where.this)
    conditions.extend(join.args["on"] for join in scope.args.get("joins") or () if join.args.get("on"))
    for condition in conditions:
        parts = condition.flatten() if isinstance(condition, exp.And) else (condition,)
        yield from (cast("exp.Expression", part) for part in parts)


def _is_value(node: exp.Expression) -> bool:
    return node.find(exp.Column, exp.Query) is None


def _constant(node: exp.Expression) -> bool:
    inner = node.this if isinstance(node, exp.Neg) else node
    return isinstance(inner, exp.Literal | exp.Boolean)


def _classify(condition: exp.Expression, resolve: Callable[[exp.Column], _TableUse | None]) -> None:
    predicate = cast("exp.Expression", condition.unnest())
    if isinstance(predicate, exp.EQ):
        _equality(predicate.this, predicate.expression, resolve)
    elif isinstance(predicate, exp.In) and isinstance(predicate.this, exp.Column):
        use = resolve(predicate.this)
        if use is not None and all(_is_value(value) for value in predicate.expressions):
            _add(use.equalities, predicate.this.name)
    elif isinstance(predicate, exp.Between) and isinstance(predicate.this, exp.Column):
        use = resolve(predicate.this)
        if use is not None:
            _add(use.ranges, predicate.this.name)
    elif isinstance(predicate, _RANGES):
        for column, other in ((predicate.this, predicate.expression), (predicate.expression, predicate.this)):
            use = resolve(column) if isinstance(column, exp.Column) else None
            if use is not None and _is_value(other):
                _add(use.ranges, column.name)


def _equality(left: exp.Expression, right: exp.Expression, resolve: Callable[[exp.Column], _TableUse | None]) -> None:
    if isinstance(left, exp.Column) and isinstance(right, exp.Column):
        for key in (left, right):
            owner = resolve(key)
            if owner is not None:
                _add(owner.joins, key.name)
        return
    for column, other in ((left, right), (right, left)):
        use = resolve(column) if isinstance(column, exp.Column) else None
        if use is not None and _is_value(other):
            _add(use.equalities, column.name)
            if _constant(other):
                use.constants[column.name] = f"{_identifier(column.name)} = {other.sql()}"


def _order(scope: exp.Expression, resolve: Callable[[exp.Column], _TableUse | None]) -> None:
    order = scope.args.get("order")
    if order is None:
        return
    keys: list[tuple[_TableUse, IndexColumn]] = []
    for ordered in order.expressions:
        column = ordered.this
        use = resolve(column) if isinstance(column, exp.Column) else None
        if use is None:
            return
        keys.append((use, IndexColumn(column.name, bool(ordered.args.get("desc")))))
    if len({id(use) for use, _ in keys}) == 1:
        keys[0][0].order = [key for _, key in keys]


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def _from_use(use: _TableUse) -> Iterator[IndexCandidate]:
    """Equality columns first, then the ORDER BY or the first range column; partial and join variants."""
    equal = [IndexColumn(name) for name in use.equalities]
    tails = _tails(use, set(use.equalities))
    for tail in (*tails, []):
        yield _candidate(use.table, [*equal, *tail], equalities=len(equal))
    if use.constants:
        where = " AND ".join(use.constants[name] for name in sorted(use.constants))
        rest = [column for column in equal if column.name not in use.constants]
        for tail in (*_tails(use, set(use.constants) | {c.name for c in rest}), []):
            if rest or tail:
                yield _candidate(use.table, [*rest, *tail], where, equalities=len(rest))
    for name in use.joins:
        yield _candidate(use.table, [IndexColumn(name)], equalities=1)
        if equal:
            yield _candidate(use.table, [*equal, IndexColumn(name)], equalities=len(equal) + 1)


def _tails(use: _TableUse, taken: set[str]) -> list[list[IndexColumn]]:
    tails = []
    order = [column for column in use.order if column.name not in taken]
    if order:
        tails.append(order)
    ranges = [name for name in use.ranges if name not in taken]
    if ranges:
        tails.append([IndexColumn(ranges[0])])
        if order and order[0].name == ranges[0]:
            tails.pop()
    return tails


def _candidate(table: str, columns: list[IndexColumn], where: str | None = None, *, equalities: int) -> IndexCandidate:
    unique: list[IndexColumn] = []
    for column in columns:
        if column.name not in {c.name for c in unique}:
            unique.append(column)
    kept = tuple(unique[:MAX_COLUMNS])
    return IndexCandidate(table=table, columns=kept, where=where, equalities=min(equalities, len(kept)))
