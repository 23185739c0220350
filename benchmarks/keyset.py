"""OFFSET vs keyset pagination at pages 1, 1,000 and 25,000 of a 1M-row table: SQLite (sync) or asyncpg (async).

Run (from the repository root; builds the table once, in --db or in a database `keyset_bench` on the server):

    taskset -c 1 python benchmarks/keyset.py --rounds 21 --calls 20
    taskset -c 1 python benchmarks/keyset.py --rounds 21 --calls 20 --postgres postgresql://postgres@127.0.0.1/postgres

Both methods go through the same SQLAlchemy ORM session and return the same 20 `Item` objects (checked). Each
round times every (ordering, page, method) for --calls calls (averaged), in a rotated order; reported is the median
over the rounds of milliseconds per page, and each page's median against page 1 of the same method.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from overdrive.db import Paginator
from overdrive.db._ordering import parse_ordering

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

PAGE = 20
PAGES = (1, 1_000, 25_000)
SECRET = b"benchmark-secret-0123456789"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[int]
    score: Mapped[int | None]
    name: Mapped[str]


ORDERINGS: dict[str, list[Any]] = {
    "created ASC, id ASC (row values)": [Item.created, Item.id],
    "created DESC, id ASC (expanded OR)": [Item.created.desc(), Item.id],
    "score ASC NULLS LAST, id (nullable)": [Item.score, Item.id],
}


def build(path: Path, rows: int) -> None:
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


def cursor_for(session: Session, paginator: Paginator, query: sa.Select[Any], page: int) -> str | None:
    """The cursor that leads to `page`: the sort-key values of the row just before it, signed."""
    if page == 1:
        return None
    keys, fingerprint = parse_ordering(query)
    row = session.execute(
        query.with_only_columns(*(key.expr for key in keys)).offset((page - 1) * PAGE - 1).limit(1)
    ).one()
    return paginator._codec.encode(fingerprint, tuple(row))


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


async def build_postgres(url: str, rows: int) -> str:
    """A database `keyset_bench` on the server at `url`, built once; its asyncpg SQLAlchemy URL."""
    server = await asyncpg.connect(url)
    try:
        if not await server.fetchval("SELECT 1 FROM pg_database WHERE datname = 'keyset_bench'"):
            await server.execute("CREATE DATABASE keyset_bench")
            database = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(path="/keyset_bench")))
            try:
                for statement in PG_BUILD:
                    await database.execute(statement.format(rows=rows, quarter=rows // 4))
            finally:
                await database.close()
    finally:
        await server.close()
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql+asyncpg", path="/keyset_bench"))


async def measure_postgres(url: str, rounds: int, calls: int) -> dict[tuple[str, int, str], list[float]]:
    engine = create_async_engine(url)
    paginator = Paginator(secret=SECRET)
    cases: list[tuple[str, int, str, Callable[[], Awaitable[object]]]] = []
    async with AsyncSession(engine) as session:
        for name, clauses in ORDERINGS.items():
            query = sa.select(Item).order_by(*clauses)
            ordered = sa.select(Item).order_by(*[c.nulls_last() if c is Item.score else c for c in clauses])
            for page in PAGES:
                cursor = await session.run_sync(lambda s, o=ordered, p=page: cursor_for(s, paginator, o, p))
                keyset = await paginator.paginate(session, query, first=PAGE, after=cursor)
                offset = (await session.scalars(ordered.offset((page - 1) * PAGE).limit(PAGE))).all()
                if [i.id for i in keyset.items] != [i.id for i in offset]:
                    msg = f"keyset and OFFSET disagree on {name} page {page}"
                    raise SystemExit(msg)

                async def keyset_page(q: Any = query, c: str | None = cursor) -> object:
                    return await paginator.paginate(session, q, first=PAGE, after=c)

                async def offset_page(q: Any = ordered, p: int = page) -> object:
                    return (await session.scalars(q.offset((p - 1) * PAGE).limit(PAGE))).all()

                cases += [(name, page, "keyset", keyset_page), (name, page, "OFFSET", offset_page)]
        times: dict[tuple[str, int, str], list[float]] = {(n, p, m): [] for n, p, m, _ in cases}
        for round_ in range(rounds):
            shift = round_ % len(cases)
            for name, page, method, run in cases[shift:] + cases[:shift]:
                elapsed = 0.0
                for _ in range(calls):
                    session.expunge_all()
                    start = time.perf_counter()
                    await run()
                    elapsed += time.perf_counter() - start
                times[name, page, method].append(elapsed / calls * 1000)
    await engine.dispose()
    return times


def report(times: dict[tuple[str, int, str], list[float]]) -> None:
    print("| ordering | method | page 1 ms | page 1,000 ms | page 25,000 ms | p1,000 / p1 | p25,000 / p1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in ORDERINGS:
        for method in ("OFFSET", "keyset"):
            medians = [statistics.median(times[name, page, method]) for page in PAGES]
            cells = " | ".join(f"{m:.3f}" for m in medians)
            print(f"| {name} | {method} | {cells} | {medians[1] / medians[0]:.2f}x | {medians[2] / medians[0]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10, help="calls per case per round, averaged")
    parser.add_argument("--db", type=Path, default=Path(".data/keyset-bench.sqlite3"))
    parser.add_argument("--postgres", metavar="URL", help="measure asyncpg on this server instead of SQLite")
    args = parser.parse_args()
    if args.postgres:
        url = asyncio.run(build_postgres(args.postgres, args.rows))
        times = asyncio.run(measure_postgres(url, args.rounds, args.calls))
        print(
            f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, asyncpg {asyncpg.__version__}, "
            f"{args.rows:,} rows, {PAGE} per page, median of {args.rounds} rounds of {args.calls} calls"
        )
        report(times)
        return
    args.db.parent.mkdir(parents=True, exist_ok=True)
    build(args.db, args.rows)
    engine = sa.create_engine(f"sqlite:///{args.db}")
    paginator = Paginator(secret=SECRET)
    cases = []
    with Session(engine) as session:
        for name, clauses in ORDERINGS.items():
            query = sa.select(Item).order_by(*clauses)
            # OFFSET with the same explicit NULL placement as keyset, so both return the same rows.
            ordered = sa.select(Item).order_by(*[c.nulls_last() if c is Item.score else c for c in clauses])
            for page in PAGES:
                cursor = cursor_for(session, paginator, ordered, page)
                keyset = paginator.paginate_sync(session, query, first=PAGE, after=cursor)
                offset = session.scalars(ordered.offset((page - 1) * PAGE).limit(PAGE)).all()
                if [i.id for i in keyset.items] != [i.id for i in offset]:
                    msg = f"keyset and OFFSET disagree on {name} page {page}"
                    raise SystemExit(msg)
                cases.append(
                    (
                        name,
                        page,
                        "keyset",
                        lambda q=query, c=cursor: paginator.paginate_sync(session, q, first=PAGE, after=c),
                    )
                )
                cases.append(
                    (
                        name,
                        page,
                        "OFFSET",
                        lambda q=ordered, p=page: session.scalars(q.offset((p - 1) * PAGE).limit(PAGE)).all(),
                    )
                )
        times: dict[tuple[str, int, str], list[float]] = {(n, p, m): [] for n, p, m, _ in cases}
        for round_ in range(args.rounds):
            shift = round_ % len(cases)
            for name, page, method, run in cases[shift:] + cases[:shift]:
                elapsed = 0.0
                for _ in range(args.calls):
                    session.expunge_all()
                    start = time.perf_counter()
                    run()
                    elapsed += time.perf_counter() - start
                times[name, page, method].append(elapsed / args.calls * 1000)
    print(
        f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, SQLite {sqlite3.sqlite_version}, "
        f"{args.rows:,} rows, {PAGE} per page, median of {args.rounds} rounds of {args.calls} calls"
    )
    report(times)


if __name__ == "__main__":
    main()
