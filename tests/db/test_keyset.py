"""Keyset pagination walks every ordering, forwards and backwards, on SQLite and PostgreSQL without losing a row."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from overdrive.db import Page, Paginator, paginate, paginate_sync
from overdrive.exceptions import ConfigurationError, PaginationError
from tests.db.conftest import StatementLog
from tests.db.models import ROWS, Base, Item, make_items

pytestmark = pytest.mark.anyio

SECRET = b"test-secret-0123456789"
# (ORDER BY, the same ordering for Python: attribute, descending, NULLs last)
Spec = list[tuple[str, bool, bool]]
ORDERINGS: dict[str, tuple[list[Any], Spec]] = {
    "asc": ([Item.bucket, Item.id], [("bucket", False, True), ("id", False, True)]),
    "desc": (
        [Item.bucket.desc(), Item.created.desc(), Item.id.desc()],
        [("bucket", True, True), ("created", True, True), ("id", True, True)],
    ),
    "nullable-asc": ([Item.score, Item.id], [("score", False, True), ("id", False, True)]),
    "nullable-desc-mixed": (
        [Item.score.desc(), Item.bucket, Item.id.desc()],
        [("score", True, False), ("bucket", False, True), ("id", True, True)],
    ),
    "nulls-first-explicit": (
        [Item.score.nulls_first(), Item.created.desc(), Item.id],
        [("score", False, False), ("created", True, True), ("id", False, True)],
    ),
    "nulls-last-desc-uuid": (
        [Item.score.desc().nulls_last(), Item.token, Item.id],
        [("score", True, True), ("token", False, True), ("id", False, True)],
    ),
}


def _compare(spec: Spec, a: Item, b: Item) -> int:
    for name, descending, nulls_last in spec:
        x, y = getattr(a, name), getattr(b, name)
        if x == y:
            continue
        if x is None or y is None:
            return (1 if x is None else -1) * (1 if nulls_last else -1)
        order: int = (x > y) - (x < y)
        return -order if descending else order
    return 0


async def _expected(session: AsyncSession, spec: Spec) -> list[int]:
    items = (await session.scalars(sa.select(Item))).all()
    return [item.id for item in sorted(items, key=functools.cmp_to_key(functools.partial(_compare, spec)))]


def _ids(page: Page[Any]) -> list[int]:
    return [item.id for item in page.items]


@pytest.fixture
def paginator() -> Paginator:
    return Paginator(secret=SECRET)


@pytest.mark.parametrize("ordering", list(ORDERINGS))
class TestWalk:
    async def test_forward_walk_returns_every_row_once_in_order(
        self, session: AsyncSession, paginator: Paginator, ordering: str
    ) -> None:
        clauses, spec = ORDERINGS[ordering]
        query = sa.select(Item).order_by(*clauses)
        seen: list[int] = []
        page = await paginator.paginate(session, query, first=7)
        assert not page.has_previous
        assert page.previous_cursor is None
        while True:
            seen += _ids(page)
            if not page.has_next:
                break
            assert page.next_cursor is not None
            page = await paginator.paginate(session, query, first=7, after=page.next_cursor)
            assert page.has_previous
        assert page.next_cursor is None
        assert seen == await _expected(session, spec)
        assert len(seen) == ROWS

    async def test_backward_walk_from_the_end_returns_every_row_once_in_order(
        self, session: AsyncSession, paginator: Paginator, ordering: str
    ) -> None:
        clauses, spec = ORDERINGS[ordering]
        query = sa.select(Item).order_by(*clauses)
        pages: list[list[int]] = []
        page = await paginator.paginate(session, query, last=7)
        assert not page.has_next
        while True:
            pages.insert(0, _ids(page))
            if not page.has_previous:
                break
            assert page.previous_cursor is not None
            page = await paginator.paginate(session, query, last=7, before=page.previous_cursor)
            assert page.has_next
        assert [i for chunk in pages for i in chunk] == await _expected(session, spec)

    async def test_previous_cursor_of_a_middle_page_returns_the_page_before_it(
        self, session: AsyncSession, paginator: Paginator, ordering: str
    ) -> None:
        query = sa.select(Item).order_by(*ORDERINGS[ordering][0])
        first = await paginator.paginate(session, query, first=11)
        second = await paginator.paginate(session, query, first=11, after=first.next_cursor)
        third = await paginator.paginate(session, query, first=11, after=second.next_cursor)
        assert third.previous_cursor is not None
        back = await paginator.paginate(session, query, first=11, before=third.previous_cursor)
        assert _ids(back) == _ids(second)
        assert back.has_next
        assert back.has_previous


class TestQueries:
    async def test_same_direction_non_null_keys_use_a_row_value_comparison(
        self, session: AsyncSession, paginator: Paginator, statements: StatementLog
    ) -> None:
        query = sa.select(Item).order_by(Item.bucket, Item.id)
        page = await paginator.paginate(session, query, first=5)
        statements.clear()
        await paginator.paginate(session, query, first=5, after=page.next_cursor)
        assert "(items.bucket, items.id) >" in statements.statements[-1]

    async def test_mixed_directions_use_the_expanded_form_with_a_leading_bound(
        self, session: AsyncSession, paginator: Paginator, statements: StatementLog
    ) -> None:
        query = sa.select(Item).order_by(Item.bucket, Item.id.desc())
        page = await paginator.paginate(session, query, first=5)
        statements.clear()
        await paginator.paginate(session, query, first=5, after=page.next_cursor)
        sql = statements.statements[-1]
        assert "items.bucket >=" in sql
        assert " OR " in sql

    async def test_a_nullable_leading_key_reads_the_rest_of_its_region_then_the_other_region(
        self, session: AsyncSession, paginator: Paginator, statements: StatementLog
    ) -> None:
        query = sa.select(Item).order_by(Item.score, Item.id)
        # A cursor on the last non-NULL row: the first query finds nothing more, the second reads the NULLs.
        tail = sa.select(Item).where(Item.score.is_not(None)).order_by(Item.score.desc(), Item.id.desc())
        last_valued = (await session.scalars(tail.limit(1))).one()
        before = await paginator.paginate(session, query, last=1, before=None)
        walk = await paginator.paginate(session, query, first=ROWS)
        index = [item.id for item in walk.items].index(last_valued.id)
        start = await paginator.paginate(session, query, first=index + 1)
        statements.clear()
        page = await paginator.paginate(session, query, first=5, after=start.next_cursor)
        assert len(statements.statements) == 2
        assert "items.score IS NOT NULL AND (items.score, items.id) >" in statements.statements[0]
        assert "WHERE items.score IS NULL ORDER BY" in statements.statements[1]
        assert all(item.score is None for item in page.items)
        assert before.items[0].id == walk.items[-1].id

    async def test_nullable_keys_get_explicit_null_placement(
        self, session: AsyncSession, paginator: Paginator, statements: StatementLog
    ) -> None:
        await paginator.paginate(session, sa.select(Item).order_by(Item.score, Item.id), first=5)
        assert "ORDER BY items.score ASC NULLS LAST, items.id ASC" in statements.statements[-1]

    async def test_a_column_select_pages_tuples(self, session: AsyncSession) -> None:
        query = sa.select(Item.bucket, Item.id).order_by(Item.bucket, Item.id.desc())
        page = await paginate(session, query, secret=SECRET, first=3)
        assert all(isinstance(item, tuple) and len(item) == 2 for item in page.items)
        rows = (await session.execute(query.limit(3))).all()
        assert page.items == [tuple(row) for row in rows]

    async def test_a_page_past_the_end_is_empty_and_has_no_cursors(self, session: AsyncSession) -> None:
        query = sa.select(Item).order_by(Item.id)
        last = await paginate(session, query, secret=SECRET, last=1)
        assert last.previous_cursor is not None
        assert not last.has_next
        beyond = await paginate(session, query, secret=SECRET, first=2, after=last.previous_cursor)
        assert beyond.items == []
        assert (beyond.next_cursor, beyond.previous_cursor, beyond.has_next) == (None, None, False)
        assert beyond.has_previous


class TestRefusals:
    @pytest.mark.parametrize(
        ("query", "message"),
        [
            (sa.select(Item), "has none"),
            (sa.select(Item).order_by(Item.bucket), "not known to be unique"),
            (sa.select(Item).order_by(Item.bucket, Item.score), "not known to be unique"),
            (sa.select(Item).order_by(Item.id).limit(5), "remove .limit()"),
            (sa.select(Item).order_by("id"), "not by label names or text"),
            (sa.select(Item).order_by(sa.text("id")), "not by label names or text"),
        ],
    )
    async def test_statements_without_a_unique_ordering_are_refused(
        self, session: AsyncSession, query: sa.Select[*tuple[Any, ...]], message: str
    ) -> None:
        with pytest.raises(PaginationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await paginate(session, query, secret=SECRET)

    @pytest.mark.parametrize(
        "arguments",
        [
            {"after": "x", "before": "y"},
            {"first": 1, "last": 1},
            {"after": "x", "last": 2},
            {"first": 0},
            {"last": 1001},
        ],
    )
    async def test_conflicting_or_out_of_range_arguments_are_refused(
        self, session: AsyncSession, arguments: dict[str, Any]
    ) -> None:
        with pytest.raises(PaginationError):
            await paginate(session, sa.select(Item).order_by(Item.id), secret=SECRET, **arguments)

    def test_a_short_secret_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError, match="at least 16 bytes"):
            Paginator(secret="short")  # noqa: S106 -- a deliberately bad test secret


class TestSync:
    def test_paginate_sync_walks_a_sync_session_like_the_async_one(self, tmp_path: Path) -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
        try:
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                session.add_all(make_items())
                session.commit()
                query = sa.select(Item).order_by(Item.score.desc(), Item.bucket, Item.id.desc())
                seen: list[int] = []
                page = paginate_sync(session, query, secret=SECRET, first=9)
                seen += _ids(page)
                while page.next_cursor is not None:
                    page = paginate_sync(session, query, secret=SECRET, first=9, after=page.next_cursor)
                    seen += _ids(page)
                items = session.scalars(sa.select(Item)).all()
                spec = ORDERINGS["nullable-desc-mixed"][1]
                ordered = sorted(items, key=functools.cmp_to_key(functools.partial(_compare, spec)))
                assert seen == [item.id for item in ordered]
        finally:
            engine.dispose()
