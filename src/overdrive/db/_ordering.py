"""The sort keys of a SELECT's ORDER BY, and the SQL that orders and filters by them.

Ordering enforced for nullable keys: NULL sorts as larger than every value (PostgreSQL's default), so ``ASC`` means
``NULLS LAST`` and ``DESC`` means ``NULLS FIRST`` unless the statement says otherwise with ``nulls_first()`` or
``nulls_last()``. The rewritten ORDER BY states NULLS FIRST/LAST explicitly for nullable keys, so SQLite (whose default
is the opposite) and PostgreSQL return the same order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from overdrive.exceptions import PaginationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Dialect

__all__ = [
    "SortKey",
    "order_clauses",
    "parse_ordering",
    "position_filter",
    "position_filters",
    "supports_row_values",
]

_DIRECTIONS = {operators.asc_op: False, operators.desc_op: True}
_NULLS = {operators.nulls_first_op: False, operators.nulls_last_op: True}
ROW_VALUES_SQLITE = (3, 15)
# order_by("name") refers to a label by name; its value cannot be selected again as a sort key.
_LABEL_REFERENCES = frozenset({"label_reference", "textual_label_reference", "textclause"})


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ORDER BY key: its expression, direction and where its NULLs go."""

    expr: ColumnElement[Any]
    descending: bool
    nulls_last: bool
    nullable: bool

    def describe(self) -> str:
        """A stable text form, part of the ordering's fingerprint."""
        direction = "DESC" if self.descending else "ASC"
        return f"{self.expr} {direction} NULLS {'LAST' if self.nulls_last else 'FIRST'}"


def _sort_key(clause: Any) -> SortKey:
    element, descending, nulls_last = clause, False, None
    while isinstance(element, UnaryExpression) and (element.modifier in _DIRECTIONS or element.modifier in _NULLS):
        if element.modifier in _DIRECTIONS:
            descending = _DIRECTIONS[element.modifier]
        else:
            nulls_last = _NULLS[element.modifier]
        element = element.element
    if not isinstance(element, ColumnElement) or element.__visit_name__ in _LABEL_REFERENCES:
        msg = f"Cannot keyset-paginate by {element!s}; sort by columns or SQL expressions, not by label names or text."
        raise PaginationError(msg)
    nullable = bool(getattr(element, "nullable", True))
    # Default: NULL is larger than any value, as in PostgreSQL.
    return SortKey(element, descending, (not descending) if nulls_last is None else nulls_last, nullable)


def parse_ordering(statement: sa.Select[*tuple[Any, ...]]) -> tuple[tuple[SortKey, ...], bytes]:
    """Return the sort keys of ``statement`` and their fingerprint.

    Raises:
        PaginationError: The statement has no ORDER BY, has its own LIMIT/OFFSET, or its last sort key is not unique.

    """
    clauses = statement._order_by_clauses  # no public accessor exists
    if not clauses:
        msg = "Keyset pagination needs an ORDER BY ending in a unique key, such as the primary key; the query has none."
        raise PaginationError(msg)
    if statement._limit_clause is not None or statement._offset_clause is not None:
        msg = "Keyset pagination sets LIMIT itself; remove .limit() and .offset() from the query."
        raise PaginationError(msg)
    keys = tuple(_sort_key(clause) for clause in clauses)
    _require_unique(keys)
    fingerprint = hashlib.sha256("\n".join(key.describe() for key in keys).encode()).digest()[:8]
    return keys, fingerprint


def _require_unique(keys: Sequence[SortKey]) -> None:
    last = keys[-1].expr
    table = getattr(last, "table", None)
    if isinstance(table, sa.Table) and not keys[-1].nullable:
        primary = {column.name for column in table.primary_key.columns}
        ordered = {key.expr.name for key in keys if getattr(key.expr, "table", None) is table}
        if getattr(last, "unique", False) or (primary and primary <= ordered):
            return
    msg = (
        f"The ORDER BY must end in a unique, non-null key, such as the primary key, so that no row is lost or "
        f"repeated between pages; its last key, {last}, is not known to be unique. Add the primary key as the last "
        "sort key."
    )
    raise PaginationError(msg)


def supports_row_values(dialect: Dialect) -> bool:
    """Whether ``dialect`` compares row values, ``(a, b) > (1, 2)``, as SQL defines it."""
    if dialect.name == "postgresql":
        return True
    version = dialect.server_version_info
    return dialect.name == "sqlite" and version is not None and tuple(version[:2]) >= ROW_VALUES_SQLITE


def order_clauses(keys: Sequence[SortKey], *, backward: bool) -> list[ColumnElement[Any]]:
    """The ORDER BY for ``keys``, reversed when walking ``backward``; NULL placement explicit for nullable keys."""
    clauses: list[ColumnElement[Any]] = []
    for key in keys:
        clause = key.expr.desc() if key.descending != backward else key.expr.asc()
        if key.nullable:
            clause = clause.nulls_last() if key.nulls_last != backward else clause.nulls_first()
        clauses.append(clause)
    return clauses


def position_filters(
    keys: Sequence[SortKey], values: Sequence[object], *, backward: bool, row_values: bool
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the rows after ``values``, to run in turn until a page is full.

    One clause, unless the leading key is nullable and the cursor sits in the region (NULL or not) that the other
    region follows. One OR over both regions would make the planner walk the index from its start and filter, which
    is as slow as OFFSET on deep pages; two queries, the rest of the cursor's region and then the other region from
    its start, each follow the index.
    """
    first, value = keys[0], values[0]
    if not first.nullable or (value is not None) != (first.nulls_last != backward):
        return [position_filter(keys, values, backward=backward, row_values=row_values)]
    if value is not None:
        rest = position_filter(
            [replace(first, nullable=False), *keys[1:]], values, backward=backward, row_values=row_values
        )
        return [sa.and_(first.expr.is_not(None), rest), first.expr.is_(None)]
    rest = position_filter(keys[1:], values[1:], backward=backward, row_values=row_values)
    return [sa.and_(first.expr.is_(None), rest), first.expr.is_not(None)]


def position_filter(
    keys: Sequence[SortKey], values: Sequence[object], *, backward: bool, row_values: bool
) -> ColumnElement[bool]:
    """The WHERE clause selecting rows strictly after ``values`` in the order of ``keys`` (before, ``backward``)."""
    descending = {key.descending != backward for key in keys}
    if row_values and len(descending) == 1 and not any(key.nullable for key in keys):
        left = sa.tuple_(*(key.expr for key in keys))
        right = sa.tuple_(*(sa.literal(value, key.expr.type) for key, value in zip(keys, values, strict=True)))
        return left < right if descending.pop() else left > right
    branches = []
    for index, key in enumerate(keys):
        step = _beyond(key, values[index], backward=backward)
        if step is not None:
            equal = [_equal(k, v) for k, v in zip(keys[:index], values[:index], strict=True)]
            branches.append(sa.and_(*equal, step))
    # Never empty: the last key is non-null, so its own branch always exists.
    expanded = sa.or_(*branches)
    # A range on the leading key lets the planner use an index on it instead of scanning for the OR.
    first, value = keys[0], values[0]
    if value is not None and not (first.nullable and first.nulls_last != backward):
        bound = first.expr <= value if first.descending != backward else first.expr >= value
        return sa.and_(bound, expanded)
    return expanded


def _equal(key: SortKey, value: object) -> ColumnElement[bool]:
    return key.expr.is_(None) if value is None else key.expr == value


def _beyond(key: SortKey, value: object, *, backward: bool) -> ColumnElement[bool] | None:
    """Rows whose ``key`` comes strictly after ``value``; None when none can."""
    nulls_last = key.nulls_last != backward
    if value is None:
        return None if nulls_last else key.expr.is_not(None)
    beyond = key.expr < value if key.descending != backward else key.expr > value
    return sa.or_(beyond, key.expr.is_(None)) if nulls_last and key.nullable else beyond
