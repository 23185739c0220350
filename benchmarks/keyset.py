"""OFFSET vs keyset pagination at pages 1, 1,000 and 25,000 of a 1M-row table: SQLite, psycopg 3 or asyncpg.

Run (from the repository root; builds the table once, in --db or in a database `keyset_bench` on the server):

    taskset -c 1 python benchmarks/keyset.py --rounds 21 --calls 20
    taskset -c 1 python benchmarks/keyset.py --driver psycopg --rounds 11 --calls 5
    taskset -c 1 python benchmarks/keyset.py --driver asyncpg --rounds 11 --calls 5

With sqlakeyset side by side (--peers; it lives only in a benchmark venv, never in the project's dependencies):

    python3 -m venv /tmp/kb-venv
    /tmp/kb-venv/bin/pip install -e ".[dev]" sqlakeyset==2.0.1787969905
    taskset -c 1 /tmp/kb-venv/bin/python benchmarks/keyset.py --driver psycopg --peers --rounds 11 --calls 5

Every method goes through the same SQLAlchemy ORM session (sync for SQLite and psycopg, an `AsyncSession` for
asyncpg) and returns the same 20 `Item` rows (checked before timing). Each round times every (ordering, page,
method) for --calls calls (averaged), in a rotated order; reported is the median over the rounds of milliseconds per
page, wall-clock and this process's CPU (on a shared machine the CPU time is the steadier of the two; on PostgreSQL
it leaves out the server's share), and each page's median against page 1 of the same method. Keyset calls take the
position as the string a client would send back (our signed cursor, sqlakeyset's bookmark) and produce both links of
the page. With --peers the script first prints what sqlakeyset does: the SQL both libraries send for page 25,000 and
its plan, the warnings sqlakeyset raises, what it does with edited bookmarks, and its page after the last non-NULL
row of a nullable key.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import platform
import random
import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from overdrive.db import Paginator
from overdrive.db._ordering import parse_ordering

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import ModuleType

PAGE = 20
PAGES = (1, 1_000, 25_000)
SECRET = b"benchmark-secret-0123456789"
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[int]
    score: Mapped[int | None]
    name: Mapped[str]


# NULL placement is explicit so that SQLite and PostgreSQL (whose defaults differ) and OFFSET return the same rows.
QUERIES: dict[str, sa.Select[Any]] = {
    "created ASC, id ASC": sa.select(Item).order_by(Item.created, Item.id),
    "created DESC, id ASC": sa.select(Item).order_by(Item.created.desc(), Item.id),
    "score ASC NULLS LAST, id (nullable)": sa.select(Item).order_by(Item.score.asc().nulls_last(), Item.id),
}
NULLABLE = "score ASC NULLS LAST, id (nullable)"

Position = tuple[tuple[Any, ...] | None, str | None]  # sort-key values of the row before a page, our cursor for it
Positions = dict[tuple[str, int], Position]
Statements = dict[tuple[str, str], list[tuple[str, Any]]]
Times = dict[tuple[str, int, str], list[float]]  # (ordering, page, method): ms per call, one entry per round


class Clocks:
    """Wall-clock and client-CPU milliseconds per call of every case, one entry per round."""

    def __init__(self, keys: Sequence[tuple[str, int, str]]) -> None:
        self.wall: Times = {key: [] for key in keys}
        self.cpu: Times = {key: [] for key in keys}

    def add(self, key: tuple[str, int, str], wall: float, cpu: float, calls: int) -> None:
        self.wall[key].append(wall / calls * 1000)
        self.cpu[key].append(cpu / calls * 1000)


def build_sqlite(path: Path, rows: int) -> None:
    if path.exists():
        return
    rng = random.Random(1)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, created INTEGER NOT NULL, score INTEGER, name TEXT NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?)",
            (
                (i, rng.randrange(rows // 4), None if rng.random() < 0.1 else rng.randrange(1000), f"item {i}")
                for i in range(1, rows + 1)
            ),
        )
        conn.execute("CREATE INDEX ix_created_id ON items (created, id)")
        conn.execute("CREATE INDEX ix_created_desc_id ON items (created DESC, id)")
        conn.execute("CREATE INDEX ix_score_id ON items (score, id)")
        conn.execute("ANALYZE")


PG_BUILD = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, created INTEGER NOT NULL, score INTEGER, name TEXT NOT NULL)",
    (
        "INSERT INTO items SELECT g, (random() * {quarter})::int, CASE WHEN random() < 0.1 THEN NULL "
        "ELSE (random() * 999)::int END, 'item ' || g FROM generate_series(1, {rows}) AS g"
    ),
    "CREATE INDEX ix_created_id ON items (created, id)",
    "CREATE INDEX ix_created_desc_id ON items (created DESC, id)",
    "CREATE INDEX ix_score_id ON items (score, id)",
    "VACUUM ANALYZE items",
)


async def build_postgres(url: str, rows: int) -> None:
    """Create the database `keyset_bench` on the server at ``url`` and its table, unless it exists."""
    server = await asyncpg.connect(url)
    try:
        if await server.fetchval("SELECT 1 FROM pg_database WHERE datname = 'keyset_bench'"):
            return
        await server.execute("CREATE DATABASE keyset_bench")
        database = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(path="/keyset_bench")))
        try:
            for statement in PG_BUILD:
                await database.execute(statement.format(rows=rows, quarter=rows // 4))
        finally:
            await database.close()
    finally:
        await server.close()


def positions(session: Session, paginator: Paginator) -> Positions:
    """For every (ordering, page): the sort-key values of the row just before the page, and our cursor for them."""
    found: Positions = {}
    for name, query in QUERIES.items():
        keys, fingerprint = parse_ordering(query)
        for page in PAGES:
            if page == 1:
                found[name, page] = (None, None)
                continue
            columns = query.with_only_columns(*(key.expr for key in keys))
            values = tuple(session.execute(columns.offset((page - 1) * PAGE - 1).limit(1)).one())
            found[name, page] = (values, paginator._codec.encode(fingerprint, values))
    return found


def item_ids(rows: Sequence[Any]) -> list[int]:
    """The ids of a page: `Item` objects (ours, OFFSET) or rows holding one (sqlakeyset)."""
    return [row.id if isinstance(row, Item) else row[0].id for row in rows]


def check(name: str, page: int, results: dict[str, Sequence[Any]]) -> None:
    pages = {method: item_ids(rows) for method, rows in results.items()}
    if len({tuple(ids) for ids in pages.values()}) != 1 or len(pages["OFFSET"]) != PAGE:
        msg = f"The methods disagree on {name} page {page}: {pages}"
        raise SystemExit(msg)


class StatementLog:
    """The SQL statements and parameters an engine sends, as SQLAlchemy hands them to the driver."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[tuple[str, Any]] = []
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def close(self) -> None:
        """Stop listening, so that the listener costs nothing in the timed calls."""
        sa.event.remove(self._engine, "before_cursor_execute", self._record)

    def _record(self, _conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        self.statements.append((statement, parameters))

    def take(self) -> list[tuple[str, Any]]:
        taken, self.statements = self.statements, []
        return taken


def sync_calls(
    session: Session, paginator: Paginator, *, name: str, page: int, position: Position, peer: ModuleType | None
) -> dict[str, Callable[[], Sequence[Any]]]:
    query, (values, cursor) = QUERIES[name], position
    calls: dict[str, Callable[[], Sequence[Any]]] = {
        "OFFSET": lambda: session.scalars(query.offset((page - 1) * PAGE).limit(PAGE)).all(),
        "overdrive": lambda: paginator.paginate_sync(session, query, first=PAGE, after=cursor).items,
    }
    if peer is not None:
        mark = peer.bookmark(values)
        calls["sqlakeyset"] = lambda: peer.page_sync(session, query, mark)
    return calls


def async_calls(
    session: AsyncSession, paginator: Paginator, *, name: str, page: int, position: Position, peer: ModuleType | None
) -> dict[str, Callable[[], Awaitable[Sequence[Any]]]]:
    query, (values, cursor) = QUERIES[name], position

    async def offset() -> Sequence[Any]:
        return (await session.scalars(query.offset((page - 1) * PAGE).limit(PAGE))).all()

    async def overdrive() -> Sequence[Any]:
        return (await paginator.paginate(session, query, first=PAGE, after=cursor)).items

    calls: dict[str, Callable[[], Awaitable[Sequence[Any]]]] = {"OFFSET": offset, "overdrive": overdrive}
    if peer is not None:
        mark = peer.bookmark(values)

        async def sqlakeyset() -> Sequence[Any]:
            return await peer.page_async(session, query, mark)  # type: ignore[no-any-return]

        calls["sqlakeyset"] = sqlakeyset
    return calls


def measure_sync(engine: sa.Engine, rounds: int, calls: int, peer: ModuleType | None) -> Clocks:
    log = StatementLog(engine)
    paginator = Paginator(secret=SECRET)
    cases: list[tuple[str, int, str, Callable[[], object]]] = []
    statements: Statements = {}
    with Session(engine) as session:
        marks = positions(session, paginator)
        for (name, page), position in marks.items():
            methods = sync_calls(session, paginator, name=name, page=page, position=position, peer=peer)
            results: dict[str, Sequence[Any]] = {}
            for method, call in methods.items():
                log.take()
                results[method] = call()
                if page == PAGES[-1]:
                    statements[name, method] = log.take()
            check(name, page, results)
            cases += [(name, page, method, call) for method, call in methods.items()]
        log.close()
        if peer is not None:
            evidence(session, paginator, peer, marks, statements)
        clocks = Clocks([(n, p, m) for n, p, m, _ in cases])
        for round_ in range(rounds):
            shift = round_ % len(cases)
            for name, page, method, run in cases[shift:] + cases[:shift]:
                wall = cpu = 0.0
                for _ in range(calls):
                    session.expunge_all()
                    start, start_cpu = time.perf_counter(), time.process_time()
                    run()
                    wall += time.perf_counter() - start
                    cpu += time.process_time() - start_cpu
                clocks.add((name, page, method), wall, cpu, calls)
    return clocks


async def measure_async(engine: AsyncEngine, rounds: int, calls: int, peer: ModuleType | None) -> Clocks:
    log = StatementLog(engine.sync_engine)
    paginator = Paginator(secret=SECRET)
    cases: list[tuple[str, int, str, Callable[[], Awaitable[object]]]] = []
    statements: Statements = {}
    async with AsyncSession(engine) as session:
        marks = await session.run_sync(positions, paginator)
        for (name, page), position in marks.items():
            methods = async_calls(session, paginator, name=name, page=page, position=position, peer=peer)
            results: dict[str, Sequence[Any]] = {}
            for method, call in methods.items():
                log.take()
                results[method] = await call()
                if page == PAGES[-1]:
                    statements[name, method] = log.take()
            check(name, page, results)
            cases += [(name, page, method, call) for method, call in methods.items()]
        log.close()
        if peer is not None:
            await session.run_sync(evidence, paginator, peer, marks, statements)
        clocks = Clocks([(n, p, m) for n, p, m, _ in cases])
        for round_ in range(rounds):
            shift = round_ % len(cases)
            for name, page, method, run in cases[shift:] + cases[:shift]:
                wall = cpu = 0.0
                for _ in range(calls):
                    session.expunge_all()
                    start, start_cpu = time.perf_counter(), time.process_time()
                    await run()
                    wall += time.perf_counter() - start
                    cpu += time.process_time() - start_cpu
                clocks.add((name, page, method), wall, cpu, calls)
    await engine.dispose()
    return clocks


def plan(session: Session, statement: str, parameters: Any) -> str:
    """The query plan of one captured statement, on one line (PostgreSQL: with the row counts of a real run)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "; ".join(str(row[-1]) for row in rows)
    # ANALYZE runs the statement, so the plan shows how many index rows the filter threw away.
    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)"
    rows = connection.exec_driver_sql(f"{explain} {statement}", parameters).all()
    return "; ".join(oneline(str(row[0])) for row in rows)


def oneline(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def evidence(session: Session, paginator: Paginator, peer: ModuleType, marks: Positions, sql: Statements) -> None:
    """Print how sqlakeyset pages on this driver, next to ours: SQL, plans, warnings, bookmark checks."""
    deep = PAGES[-1]
    print(f"sqlakeyset compares row values on this dialect: {peer.row_values_used(session)}")
    for name, query in QUERIES.items():
        print(f"\n{name}, page {deep:,}:")
        for method in ("overdrive", "sqlakeyset"):
            for statement, parameters in sql[name, method]:
                print(f"- {method} SQL: {oneline(statement)}  params={parameters}")
                print(f"  plan: {plan(session, statement, parameters)}")
        print(f"- sqlakeyset warnings: {peer.warnings_for(session, query) or 'none'}")
    bare = sa.select(Item).order_by(Item.score.nulls_last(), Item.id)
    print(f"- sqlakeyset, page 1 ordered by score.nulls_last() without asc(): {peer.bare_nulls_last(session, bare)}")
    first, other = QUERIES["created ASC, id ASC"], QUERIES["created DESC, id ASC"]
    values, cursor = marks["created ASC, id ASC", 1_000]
    print("\n| crafted position (page 1,000, created ASC, id ASC) | sqlakeyset | overdrive |\n|---|---|---|")
    for attempt in peer.tampering(session, paginator, (first, other), values, cursor):
        print(f"| {attempt.what} | {attempt.sqlakeyset} | {attempt.overdrive} |")
    nullable = QUERIES[NULLABLE]
    last = session.execute(
        sa.select(Item.score, Item.id)
        .where(Item.score.is_not(None))
        .order_by(Item.score.desc(), Item.id.desc())
        .limit(1)
    ).first()
    nulls = session.scalar(sa.select(sa.func.count()).where(Item.score.is_(None)))
    if last is None:
        return
    fingerprint = parse_ordering(nullable)[1]
    theirs, their_next, ours, our_next = peer.null_boundary(
        session, paginator, nullable, tuple(last), paginator._codec.encode(fingerprint, tuple(last))
    )
    print(
        f"\nAfter the last non-NULL score ({tuple(last)}), {nulls:,} rows with NULL score follow. sqlakeyset: "
        f"{theirs} rows, has_next={their_next}; overdrive: {ours} rows, has_next={our_next}.\n"
    )


def report(times: Times, methods: Sequence[str], clock: str) -> None:
    print(f"\n{clock}, median over the rounds:\n")
    print("| ordering | method | page 1 ms | page 1,000 ms | page 25,000 ms | p1,000 / p1 | p25,000 / p1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in QUERIES:
        for method in methods:
            medians = [statistics.median(times[name, page, method]) for page in PAGES]
            cells = " | ".join(f"{m:.3f}" for m in medians)
            print(f"| {name} | {method} | {cells} | {medians[1] / medians[0]:.2f}x | {medians[2] / medians[0]:.2f}x |")
    if "sqlakeyset" not in methods:
        return
    print(f"\nsqlakeyset / overdrive, {clock}, median of per-round ratios:\n")
    print("| ordering | page 1 | page 1,000 | page 25,000 |\n|---|---:|---:|---:|")
    for name in QUERIES:
        ratios = [
            statistics.median(
                a / b for a, b in zip(times[name, page, "sqlakeyset"], times[name, page, "overdrive"], strict=True)
            )
            for page in PAGES
        ]
        print(f"| {name} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")


def versions(driver: str, engine: sa.Engine, peer: ModuleType | None) -> str:
    parts = [f"Python {platform.python_version()}", f"SQLAlchemy {sa.__version__}"]
    if driver == "sqlite":
        parts.append(f"SQLite {sqlite3.sqlite_version}")
    else:
        parts.append(f"{driver} {importlib.metadata.version(driver)}")
        server = engine.dialect.server_version_info or ()
        parts.append("PostgreSQL " + ".".join(str(v) for v in server))
    if peer is not None:
        parts.append(f"sqlakeyset {importlib.metadata.version('sqlakeyset')}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10, help="calls per case per round, averaged")
    parser.add_argument("--db", type=Path, default=Path(".data/keyset-bench.sqlite3"))
    parser.add_argument("--driver", choices=("sqlite", "psycopg", "asyncpg"), help="default: sqlite, or asyncpg")
    parser.add_argument("--postgres", metavar="URL", help=f"the PostgreSQL server (default {SERVER})")
    parser.add_argument("--peers", action="store_true", help="add sqlakeyset (installed in a benchmark venv)")
    args = parser.parse_args()
    driver = args.driver or ("asyncpg" if args.postgres else "sqlite")
    peer: ModuleType | None = None
    if args.peers:
        # Imported only when asked for: sqlakeyset is installed in the benchmark venv alone.
        peer = importlib.import_module("keyset_sqlakeyset")
        peer.quiet()
    if driver == "sqlite":
        args.db.parent.mkdir(parents=True, exist_ok=True)
        build_sqlite(args.db, args.rows)
        url = f"sqlite:///{args.db}"
    else:
        server = args.postgres or SERVER
        asyncio.run(build_postgres(server, args.rows))
        url = urlunsplit(urlsplit(server)._replace(scheme=f"postgresql+{driver}", path="/keyset_bench"))
    if driver == "asyncpg":
        async_engine = create_async_engine(url)
        clocks = asyncio.run(measure_async(async_engine, args.rounds, args.calls, peer))
        engine = async_engine.sync_engine
    else:
        engine = sa.create_engine(url)
        clocks = measure_sync(engine, args.rounds, args.calls, peer)
        engine.dispose()
    print(
        f"{versions(driver, engine, peer)}, {args.rows:,} rows, {PAGE} per page, "
        f"median of {args.rounds} rounds of {args.calls} calls"
    )
    methods = ("OFFSET", "overdrive", "sqlakeyset") if peer else ("OFFSET", "overdrive")
    report(clocks.wall, methods, "wall-clock ms per page")
    # CPU of this process only: all of the work on SQLite, the client's share on PostgreSQL.
    report(clocks.cpu, methods, "client CPU ms per page")


if __name__ == "__main__":
    main()
