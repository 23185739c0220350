"""QueryMonitor against real databases: counts, N+1 findings with call sites, no false positives, fixes verified."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, joinedload, selectinload

from overdrive.db import NPlusOne, NPlusOneMode, QueryMonitor, QueryScope
from overdrive.exceptions import ConfigurationError, NPlusOneError, NPlusOneWarning
from tests import services
from tests.db.n1models import AUTHORS, Author, Base, Book, make_rows

pytestmark = pytest.mark.anyio
T = TypeVar("T")
BACKENDS = [
    "sqlite-sync",
    "sqlite-async",
    pytest.param("postgresql-sync", marks=pytest.mark.integration),
    pytest.param("postgresql-async", marks=pytest.mark.integration),
]


def here(offset: int = 0) -> str:
    """``file:line`` of the caller's line plus `offset`."""
    frame = sys._getframe(1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno + offset}"


class Database:
    """One engine with the N+1 fixture loaded, driven by sync ORM code whatever the driver."""

    def __init__(self, engine: Engine | AsyncEngine) -> None:
        self.engine = engine

    @property
    def is_async(self) -> bool:
        return isinstance(self.engine, AsyncEngine)

    async def run(self, work: Callable[[Session], T]) -> T:
        if isinstance(self.engine, AsyncEngine):
            async with AsyncSession(self.engine) as session:
                return await session.run_sync(work)
        with Session(self.engine) as session:
            return work(session)


ASYNC_BACKENDS = [
    "sqlite-async",
    pytest.param("postgresql-async", marks=pytest.mark.integration),
]


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _database_url(request, tmp_path_factory)


@pytest.fixture(scope="module", params=ASYNC_BACKENDS)
def async_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _database_url(request, tmp_path_factory)


def _database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend: str = request.param
    if backend.startswith("sqlite"):
        path = tmp_path_factory.mktemp("n1") / "n1.sqlite3"
        yield f"sqlite+aiosqlite:///{path}" if backend.endswith("async") else f"sqlite:///{path}"
        return
    server: str = request.getfixturevalue("postgres_url")
    name = f"overdrive_n1_{uuid.uuid4().hex[:12]}"
    url = services.create_database(server, name)
    driver = "postgresql+asyncpg://" if backend.endswith("async") else "postgresql+psycopg://"
    try:
        yield url.replace("postgresql://", driver, 1)
    finally:
        services.drop_database(server, name)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async for database in _database(database_url):
        yield database


@pytest.fixture
async def async_database(async_database_url: str) -> AsyncIterator[Database]:
    async for database in _database(async_database_url):
        yield database


async def _database(database_url: str) -> AsyncIterator[Database]:
    if "+asyncpg" in database_url or "+aiosqlite" in database_url:
        async_engine = create_async_engine(database_url)
        async with async_engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(async_engine) as async_session, async_session.begin():
            async_session.add_all(make_rows())
        yield Database(async_engine)
        await async_engine.dispose()
        return
    engine = sa.create_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(make_rows())
    yield Database(engine)
    engine.dispose()


@pytest.fixture
def monitor(database: Database) -> Iterator[QueryMonitor]:
    monitor = QueryMonitor(n_plus_one="record")
    monitor.instrument(database.engine)
    yield monitor
    monitor.uninstrument()


def titles_lazily(session: Session) -> tuple[int, str, str]:
    """The classic N+1: one query for the authors, then one per author for its books."""
    parents_site = here(1)
    authors = session.scalars(sa.select(Author).order_by(Author.id)).all()
    count = 0
    for author in authors:
        lazy_site = here(1)
        count += len(author.books)
    return count, parents_site, lazy_site


async def test_lazy_loads_from_a_multi_row_result_are_flagged_at_their_lines(
    database: Database, monitor: QueryMonitor
) -> None:
    with monitor.scope() as scope:
        books, parents_site, lazy_site = await database.run(titles_lazily)
    assert books == AUTHORS * 3
    assert scope.queries == AUTHORS + 1
    [finding] = scope.findings
    assert finding.kind == "lazy_load"
    assert finding.subject == "Author.books"
    assert finding.count == AUTHORS
    assert finding.call_site == lazy_site
    assert finding.parents_site == parents_site
    assert "selectinload(Author.books)" in finding.suggestion
    assert finding.fingerprint is not None
    stats = monitor.store.get(finding.fingerprint)
    assert stats is not None
    assert stats.count == AUTHORS
    assert "n1_books" in stats.fingerprint.normalized


@pytest.mark.parametrize("loader", [selectinload, joinedload])
async def test_eager_loading_fixes_it_in_one_or_two_queries(
    database: Database, monitor: QueryMonitor, loader: Callable[[Any], Any]
) -> None:
    def eager(session: Session) -> int:
        statement = sa.select(Author).options(loader(Author.books)).order_by(Author.id)
        return sum(len(a.books) for a in session.scalars(statement).unique().all())

    with monitor.scope() as scope:
        assert await database.run(eager) == AUTHORS * 3
    assert scope.queries == (2 if loader is selectinload else 1)
    assert scope.findings == []


async def test_single_row_loads_and_identity_map_hits_are_not_flagged(
    database: Database, monitor: QueryMonitor
) -> None:
    def single_rows(session: Session) -> int:
        total, kept = 0, []  # the identity map holds objects weakly: keep them, or they are loaded again
        for ident in (1, 2, 3):  # session.get() of one author, then its books: one row each, no N+1
            author = session.get(Author, ident)
            assert author is not None
            kept.append(author)
            total += len(author.books)
        book = session.scalars(sa.select(Book).where(Book.id == 11)).one()
        total += len(book.author.books)  # many-to-one already in the identity map: no query at all
        return total

    with monitor.scope() as scope:
        assert await database.run(single_rows) == 12
    assert scope.findings == []
    assert scope.queries == 7


async def test_touching_one_parent_of_a_list_is_not_flagged(database: Database, monitor: QueryMonitor) -> None:
    def first_only(session: Session) -> int:
        authors = session.scalars(sa.select(Author).order_by(Author.id)).all()
        return len(authors[0].books)

    with monitor.scope() as scope:
        assert await database.run(first_only) == 3
    assert scope.findings == []


async def test_a_lookup_in_a_loop_is_flagged_as_repeated(database: Database, monitor: QueryMonitor) -> None:
    def loop(session: Session) -> tuple[int, str]:
        found = 0
        for ident in range(1, 11):
            site = here(1)
            found += len(session.scalars(sa.select(Book).where(Book.author_id == ident)).all())
        return found, site

    with monitor.scope() as scope:
        found, site = await database.run(loop)
    assert found == 30
    [finding] = scope.findings
    assert finding.kind == "repeated"
    assert finding.count == 10
    assert finding.call_site == site
    assert "n1_books" in finding.subject
    assert "= ?" in finding.subject


async def test_writes_in_a_loop_and_counts_below_the_threshold_are_not_flagged(
    database: Database, monitor: QueryMonitor
) -> None:
    def writes(session: Session) -> None:
        for ident in range(1, 9):
            session.execute(sa.update(Author).where(Author.id == ident).values(name=f"renamed {ident}"))
        for ident in range(1, 6):  # five identical SELECTs: at the threshold, not over it
            session.execute(sa.select(Author.name).where(Author.id == ident)).scalar_one()
        session.rollback()

    with monitor.scope() as scope:
        await database.run(writes)
    assert scope.findings == []


async def test_awaitable_attrs_report_the_awaiting_line(async_database: Database) -> None:
    assert isinstance(async_database.engine, AsyncEngine)
    monitor = QueryMonitor(n_plus_one="record")
    monitor.instrument(async_database.engine)
    async with AsyncSession(async_database.engine) as session:
        with monitor.scope() as scope:
            parents_site = here(1)
            authors = (await session.scalars(sa.select(Author).order_by(Author.id).limit(5))).all()
            for author in authors:
                lazy_site = here(1)
                await author.awaitable_attrs.books
    monitor.uninstrument()
    [finding] = scope.findings
    assert (finding.call_site, finding.parents_site, finding.count) == (lazy_site, parents_site, 5)


async def test_scopes_are_separate_and_queries_outside_still_reach_the_store(
    database: Database, monitor: QueryMonitor
) -> None:
    def count_authors(session: Session) -> int:
        return session.execute(sa.select(sa.func.count()).select_from(Author)).scalar_one()

    assert await database.run(count_authors) == AUTHORS
    assert monitor.current is None
    with monitor.scope("a") as first:
        await database.run(count_authors)
    with monitor.scope("b") as second:
        await database.run(count_authors)
        await database.run(count_authors)
    assert (first.queries, second.queries) == (1, 2)
    assert first.duration_s > 0
    [stats] = [s for s in monitor.store.top() if "count(" in s.fingerprint.normalized.lower()]
    assert stats.count == 4
    assert stats.call_site is not None
    assert stats.call_site.startswith(__file__)


async def test_modes_raise_warn_and_log(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    modes: tuple[NPlusOneMode, ...] = ("raise", "warn", "log", "off")
    for mode in modes:
        monitor = QueryMonitor(n_plus_one=mode)
        monitor.instrument(database.engine)
        try:
            with monitor.scope() as scope:
                if mode == "raise":
                    with pytest.raises(NPlusOneError, match=r"Author\.books") as raised:
                        await database.run(titles_lazily)
                    assert isinstance(raised.value.finding, NPlusOne)
                elif mode == "warn":
                    with pytest.warns(NPlusOneWarning, match=r"Author\.books"):
                        await database.run(titles_lazily)
                else:
                    caplog.clear()
                    with caplog.at_level(logging.WARNING, logger="overdrive.db"):
                        await database.run(titles_lazily)
                    logged = [r for r in caplog.records if r.name == "overdrive.db"]
                    assert len(logged) == (1 if mode == "log" else 0)
            assert len(scope.findings) == (0 if mode == "off" else 1)
        finally:
            monitor.uninstrument()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="n_plus_one"):
        QueryMonitor(n_plus_one="loud")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least 1"):
        QueryMonitor(repeat_threshold=0)


def test_uninstrument_stops_recording(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monitor = QueryMonitor()
    monitor.instrument(engine)
    monitor.instrument(engine)  # twice is once
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    monitor.uninstrument()
    with engine.connect() as conn, monitor.scope() as scope:
        conn.execute(sa.text("select 1"))
    assert scope.queries == 0
    assert [s.count for s in monitor.store.top()] == [1]


def test_executemany_and_no_parameter_statements_are_timed(tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'y.sqlite3'}")
    monitor = QueryMonitor()
    monitor.instrument(engine)
    with engine.begin() as conn, monitor.scope() as scope:
        conn.exec_driver_sql("create table t (x integer)")
        conn.exec_driver_sql("insert into t (x) values (?)", [(1,), (2,), (3,)])
        assert conn.exec_driver_sql("select count(*) from t").scalar_one() == 3
    assert scope.queries == 3
    insert = next(s for s in monitor.store.top() if s.fingerprint.operation == "INSERT")
    assert insert.rows == 3
    assert insert.example_parameters == [(1,), (2,), (3,)]
    assert insert.snapshot().example["parameters"] == [1]


def test_scope_type_is_exported() -> None:
    assert QueryScope().queries == 0


async def test_slow_selects_get_one_plan_with_warnings_and_explain_is_not_counted(database: Database) -> None:
    def build(session: Session) -> None:
        session.execute(sa.text("DROP TABLE IF EXISTS plan_t"))
        session.execute(sa.text("CREATE TABLE plan_t (id integer primary key, v integer, w integer)"))
        rows = [{"i": i, "v": i % 7, "w": (i * 7919) % 20000} for i in range(20_000)]
        session.execute(sa.text("INSERT INTO plan_t (id, v, w) VALUES (:i, :v, :w)"), rows)
        session.execute(sa.text("ANALYZE plan_t"))
        session.commit()

    await database.run(build)
    monitor = QueryMonitor(n_plus_one="record", explain_slower_than=0.0)
    monitor.instrument(database.engine)

    def query(session: Session) -> list[int]:
        statement = sa.text("SELECT id FROM plan_t WHERE v = :v ORDER BY w LIMIT 5")
        first = [row[0] for row in session.execute(statement, {"v": 3})]
        again = [row[0] for row in session.execute(statement, {"v": 3})]
        session.execute(sa.text("UPDATE plan_t SET w = w WHERE id = 1"))
        session.rollback()
        assert first == again
        return first

    try:
        with monitor.scope() as scope:
            ids = await database.run(query)
    finally:
        monitor.uninstrument()
    assert len(ids) == 5
    assert scope.queries == 3  # two SELECTs and the UPDATE; the EXPLAIN is not counted
    assert not any("EXPLAIN" in s.fingerprint.normalized.upper() for s in monitor.store.top())
    select = next(s for s in monitor.store.top() if s.fingerprint.normalized.startswith("SELECT id FROM plan_t"))
    assert select.count == 2
    assert select.plan is not None
    assert "error" not in select.plan, select.plan
    kinds = {w["kind"] for w in select.plan["warnings"]}
    assert "seq_scan" in kinds, select.plan["warnings"]
    update = next(s for s in monitor.store.top() if s.fingerprint.operation == "UPDATE")
    assert update.plan is None  # writes are never explained
    assert select.snapshot().plan == select.plan
    assert monitor.plan_errors == 0


def test_plan_capture_settings() -> None:
    assert QueryMonitor().explain_slower_than is None
    with pytest.raises(ConfigurationError, match="explain_slower_than"):
        QueryMonitor(explain_slower_than=-1)
