"""The N+1 fixture: 100 authors x 3 books, the naive loop and its fixes, as the query monitor sees them.

Run (from the repository root; add --postgres URL for PostgreSQL via asyncpg as well):

    python benchmarks/n_plus_one.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

For each backend it prints the queries each version sends, the findings (kind, count, the line that ran the lazy
load and the line that loaded the parents) and the wall time (median of --rounds). With the peer `nplusone`
installed in the same environment (``pip install nplusone``), it also reports whether that library can hook
SQLAlchemy 2 at all.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import joinedload, selectinload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.db.n1models import Author, Base, Book, make_rows

from overdrive.db import BatchLoader, QueryMonitor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def naive(session: AsyncSession) -> int:
    authors = (await session.scalars(sa.select(Author).order_by(Author.id))).all()
    return sum([len(await author.awaitable_attrs.books) for author in authors])


async def selectin(session: AsyncSession) -> int:
    statement = sa.select(Author).options(selectinload(Author.books)).order_by(Author.id)
    return sum(len(a.books) for a in (await session.scalars(statement)).all())


async def joined(session: AsyncSession) -> int:
    statement = sa.select(Author).options(joinedload(Author.books)).order_by(Author.id)
    return sum(len(a.books) for a in (await session.scalars(statement)).unique().all())


async def batched(session: AsyncSession) -> int:
    async def books_of(author_ids: list[int]) -> dict[int, list[Book]]:
        rows = (await session.scalars(sa.select(Book).where(Book.author_id.in_(author_ids)))).all()
        found: dict[int, list[Book]] = {ident: [] for ident in author_ids}
        for book in rows:
            found[book.author_id].append(book)
        return found

    loader: BatchLoader[int, list[Book]] = BatchLoader(books_of)
    ids = (await session.scalars(sa.select(Author.id).order_by(Author.id))).all()
    shelves = await asyncio.gather(*(loader.load(ident) for ident in ids))
    return sum(len(books or []) for books in shelves)


VERSIONS: dict[str, Callable[[AsyncSession], Awaitable[int]]] = {
    "naive loop (lazy loads)": naive,
    "selectinload": selectin,
    "joinedload": joined,
    "BatchLoader": batched,
}


def nplusone_status() -> str:
    try:
        importlib.import_module("nplusone.ext.sqlalchemy")
    except ModuleNotFoundError:
        return "not installed here"
    except Exception as error:  # noqa: BLE001 -- report whatever breaks the import
        return f"fails to import with SQLAlchemy {sa.__version__}: {type(error).__name__}: {error}"
    return "imports (check its findings separately)"


async def run_backend(name: str, url: str, rounds: int) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session, session.begin():
        session.add_all(make_rows())
    monitor = QueryMonitor(n_plus_one="record")
    monitor.instrument(engine)
    print(f"\n{name}")
    print(f"  {'version':<26} {'books':>5} {'queries':>7} {'median ms':>9}  findings")
    for label, version in VERSIONS.items():
        times: list[float] = []
        for _ in range(rounds):
            async with AsyncSession(engine) as session:
                with monitor.scope() as scope:
                    started = time.perf_counter()
                    books = await version(session)
                    times.append((time.perf_counter() - started) * 1e3)
        found = "; ".join(
            f"{f.kind} {f.subject} x{f.count} at {_short(f.call_site)} (parents {_short(f.parents_site)})"
            for f in scope.findings
        )
        print(f"  {label:<26} {books:5d} {scope.queries:7d} {statistics.median(times):9.2f}  {found or '-'}")
    monitor.uninstrument()
    await engine.dispose()


def _short(site: str | None) -> str:
    return "?" if site is None else f"{Path(site.rsplit(':', 1)[0]).name}:{site.rsplit(':', 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--postgres", help="a PostgreSQL URL (postgresql://...)")
    args = parser.parse_args()
    print(f"SQLAlchemy {sa.__version__}; peer nplusone: {nplusone_status()}")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_backend("SQLite (aiosqlite)", f"sqlite+aiosqlite:///{tmp}/n1.sqlite3", args.rounds))
    if args.postgres:
        url = "postgresql+asyncpg://" + args.postgres.split("://", 1)[1]
        asyncio.run(run_backend("PostgreSQL (asyncpg)", url, args.rounds))


if __name__ == "__main__":
    main()
