"""Where a deep keyset page's extra time goes: µs of CPU per step of `Paginator.paginate_sync`, page 1 vs 25,000.

Run after benchmarks/keyset.py has built the SQLite table:

    taskset -c 1 python benchmarks/keyset_parts.py

Each step runs --calls times per repeat; reported is the median over --repeats of CPU µs per call (process time, so
other tenants of a shared machine inflate it less than wall-clock time). Ordering: created ASC, id ASC.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from keyset import PAGE, QUERIES, SECRET, positions
from sqlalchemy.orm import Session

from overdrive.db import Paginator
from overdrive.db._ordering import order_clauses, parse_ordering, position_filters

if TYPE_CHECKING:
    from collections.abc import Callable

NAME = "created ASC, id ASC"


def cpu_us(step: Callable[[], object], calls: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            step()
        samples.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path(".data/keyset-bench.sqlite3"))
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    paginator, query = Paginator(secret=SECRET), QUERIES[NAME]
    keys, fingerprint = parse_ordering(query)
    with Session(sa.create_engine(f"sqlite:///{args.db}")) as session:
        marks = positions(session, paginator)
        dialect = session.get_bind().dialect
        values, cursor = marks[NAME, 25_000]
        if values is None or cursor is None:
            return
        raw = session.connection().connection.dbapi_connection
        if raw is None:
            return

        def page(after: str | None) -> Callable[[], object]:
            def run() -> object:
                session.expunge_all()
                return paginator.paginate_sync(session, query, first=PAGE, after=after)

            return run

        def plan(after: str | None) -> Callable[[], object]:
            return lambda: paginator._plan(
                statement=query, dialect=dialect, first=PAGE, after=after, last=None, before=None
            )

        def sql(after: str | None) -> Callable[[], object]:
            statement = paginator._plan(
                statement=query, dialect=dialect, first=PAGE, after=after, last=None, before=None
            ).queries[0]
            text = str(statement.limit(PAGE + 1).compile(dialect=dialect))
            params = [*(values if after else ()), PAGE + 1, 0]
            return lambda: raw.execute(text, params).fetchall()

        steps: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "whole paginate_sync (ORM rows, both cursors)": (page(None), page(cursor)),
            "_plan: parse ORDER BY, decode cursor, build SELECT": (plan(None), plan(cursor)),
            "the same SQL on the raw sqlite3 connection": (sql(None), sql(cursor)),
        }
        print("| step | page 1 µs | page 25,000 µs |\n|---|---:|---:|")
        for what, (first, deep) in steps.items():
            shallow_us, deep_us = cpu_us(first, args.calls, args.repeats), cpu_us(deep, args.calls, args.repeats)
            print(f"| {what} | {shallow_us:.1f} | {deep_us:.1f} |")
        print("\n| part of a deep page's plan | µs |\n|---|---:|")
        parts: dict[str, Callable[[], object]] = {
            "parse_ordering": lambda: parse_ordering(query),
            "decode and verify the cursor": lambda: paginator._codec.decode(cursor, fingerprint, len(keys)),
            "sign one cursor": lambda: paginator._codec.encode(fingerprint, values),
            "position_filters (WHERE for the cursor)": lambda: position_filters(
                keys, values, backward=False, row_values=True
            ),
            "ORDER BY and key columns": lambda: (
                query.order_by(None)
                .order_by(*order_clauses(keys, backward=False))
                .add_columns(*(key.expr.label(f"k{i}") for i, key in enumerate(keys)))
            ),
        }
        for what, step in parts.items():
            print(f"| {what} | {cpu_us(step, args.calls * 4, args.repeats):.1f} |")


if __name__ == "__main__":
    main()
