"""Keyset (seek) pagination for SQLAlchemy 2 SELECTs, with signed cursors.

OFFSET pagination reads and throws away every row before the page, so deep pages get slower in proportion to their
depth. Keyset pagination remembers where the last page ended, the sort-key values of its last row, and asks for rows
after it: ``WHERE (created, id) > (:created, :id) ORDER BY created, id LIMIT 21``, which an index answers in the same
time on page 1 and page 25,000.

    paginator = Paginator(secret=settings.cursor_secret)
    page = await paginator.paginate(session, select(Post).order_by(Post.created.desc(), Post.id), first=20)
    later = await paginator.paginate(session, same_query, first=20, after=page.next_cursor)
    earlier = await paginator.paginate(session, same_query, first=20, before=later.previous_cursor)

The ordering comes from the statement's ORDER BY: any number of keys, each ASC or DESC, nullable keys included
(NULL sorts as larger than any value unless the statement says ``nulls_first()``/``nulls_last()``; see
`overdrive.db._ordering`). The last key must be unique, such as the primary key. Cursors are opaque strings signed
with the paginator's secret and bound to the ordering; a bad one raises `InvalidCursor`, which a web app answers with
400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from overdrive.db._cursor import CursorCodec
from overdrive.db._ordering import order_clauses, parse_ordering, position_filters, supports_row_values
from overdrive.exceptions import PaginationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["Page", "Paginator", "paginate", "paginate_sync"]

T = TypeVar("T")
DEFAULT_SIZE = 20
MAX_SIZE = 1000
_KEY_LABEL = "_overdrive_key_"


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of results.

    Attributes:
        items: The rows of the page in the statement's order: the entity or value itself when the statement selects
            one thing (``select(Model)``, ``select(Model.id)``), else tuples.
        next_cursor: Pass as ``after=`` for the following page; None when there is none, or when this page is
            empty (rows were deleted under the cursor that led here: start again from that cursor or the first page).
        previous_cursor: Pass as ``before=`` for the preceding page; None when there is none, or when this page is
            empty.
        has_next: Whether rows follow this page.
        has_previous: Whether rows precede this page.

    """

    items: list[T]
    next_cursor: str | None
    previous_cursor: str | None
    has_next: bool
    has_previous: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    """A paginated query, ready to run, and what is needed to turn its rows into a page."""

    queries: list[sa.Select[*tuple[Any, ...]]]
    fingerprint: bytes
    width: int
    size: int
    backward: bool
    cursor: str | None


class Paginator:
    """Paginates SELECT statements by their ORDER BY, issuing cursors signed with one secret.

    Args:
        secret: The HMAC key for cursors, at least 16 bytes, shared by every server that reads them.
        default_size: The page size when neither ``first`` nor ``last`` is given.
        max_size: The largest page a caller may ask for.

    Raises:
        ConfigurationError: The secret is shorter than 16 bytes.

    """

    __slots__ = ("_codec", "default_size", "max_size")

    def __init__(self, *, secret: bytes | str, default_size: int = DEFAULT_SIZE, max_size: int = MAX_SIZE) -> None:
        self._codec = CursorCodec(secret)
        self.default_size = default_size
        self.max_size = max_size

    async def paginate(
        self,
        session: AsyncSession,
        statement: sa.Select[*tuple[Any, ...]],
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Page[Any]:
        """Return one page of ``statement`` on an async session.

        Forward: ``first`` rows after the ``after`` cursor (from the start when None). Backward: ``last`` (or
        ``first``) rows before the ``before`` cursor (the final rows when ``before`` is None and ``last`` is given).

        Raises:
            InvalidCursor: A cursor is malformed, tampered with, foreign, or issued for another ordering.
            PaginationError: The statement has no unique ordering, or the arguments conflict.

        """
        plan = self._plan(
            statement=statement, dialect=session.get_bind().dialect, first=first, after=after, last=last, before=before
        )
        rows: list[Row[*tuple[Any, ...]]] = []
        for query in plan.queries:
            if len(rows) > plan.size:
                break
            rows += (await session.execute(query.limit(plan.size + 1 - len(rows)))).all()
        return self._page(plan, rows)

    def paginate_sync(
        self,
        session: Session,
        statement: sa.Select[*tuple[Any, ...]],
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Page[Any]:
        """Return one page of ``statement`` on a sync session; see `paginate`."""
        plan = self._plan(
            statement=statement, dialect=session.get_bind().dialect, first=first, after=after, last=last, before=before
        )
        rows: list[Row[*tuple[Any, ...]]] = []
        for query in plan.queries:
            if len(rows) > plan.size:
                break
            rows += session.execute(query.limit(plan.size + 1 - len(rows))).all()
        return self._page(plan, rows)

    def _plan(
        self,
        *,
        statement: sa.Select[*tuple[Any, ...]],
        dialect: sa.Dialect,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> _Plan:
        if after is not None and before is not None:
            msg = "Pass either after= or before=, not both: a page is read in one direction."
            raise PaginationError(msg)
        if first is not None and last is not None:
            msg = "Pass either first= or last=, not both."
            raise PaginationError(msg)
        backward = before is not None or last is not None
        if after is not None and backward:
            msg = "Cannot combine after= with last=; use first= with after=, or last= with before=."
            raise PaginationError(msg)
        size = next((n for n in (first, last) if n is not None), self.default_size)
        if not 1 <= size <= self.max_size:
            msg = f"The page size must be between 1 and {self.max_size}; got {size}."
            raise PaginationError(msg)
        keys, fingerprint = parse_ordering(statement)
        cursor = before if backward else after
        width = len(statement.column_descriptions)
        query = statement.order_by(None).order_by(*order_clauses(keys, backward=backward))
        query = query.add_columns(*(key.expr.label(f"{_KEY_LABEL}{i}") for i, key in enumerate(keys)))
        queries = [query]
        if cursor is not None:
            values = self._codec.decode(cursor, fingerprint, len(keys))
            row_values = supports_row_values(dialect)
            filters = position_filters(keys, values, backward=backward, row_values=row_values)
            queries = [query.where(condition) for condition in filters]
        return _Plan(queries, fingerprint, width, size, backward, cursor)

    def _page(self, plan: _Plan, rows: Sequence[Row[*tuple[Any, ...]]]) -> Page[Any]:
        more = len(rows) > plan.size
        rows = list(rows[: plan.size])
        if plan.backward:
            rows.reverse()
        items = [row[0] if plan.width == 1 else tuple(row[: plan.width]) for row in rows]
        if plan.backward:
            has_previous, has_next = more, plan.cursor is not None
        else:
            has_previous, has_next = plan.cursor is not None, more
        return Page(
            items=items,
            next_cursor=self._cursor(plan, rows[-1]) if has_next and rows else None,
            previous_cursor=self._cursor(plan, rows[0]) if has_previous and rows else None,
            has_next=has_next,
            has_previous=has_previous,
        )

    def _cursor(self, plan: _Plan, row: Row[*tuple[Any, ...]]) -> str:
        return self._codec.encode(plan.fingerprint, row[plan.width :])


async def paginate(
    session: AsyncSession,
    statement: sa.Select[*tuple[Any, ...]],
    *,
    secret: bytes | str,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Any]:
    """Return one page of ``statement``, cursors signed with ``secret``; see `Paginator.paginate`."""
    paginator = Paginator(secret=secret)
    return await paginator.paginate(session, statement, first=first, after=after, last=last, before=before)


def paginate_sync(
    session: Session,
    statement: sa.Select[*tuple[Any, ...]],
    *,
    secret: bytes | str,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Any]:
    """Return one page of ``statement`` on a sync session; see `Paginator.paginate`."""
    return Paginator(secret=secret).paginate_sync(
        session, statement, first=first, after=after, last=last, before=before
    )
