"""One ordering, page 1 against a cursor page deep in the table, each timed in a tight loop on one warm session.

Run (after `benchmarks/keyset.py` has built the `keyset_bench` database):

    taskset -c 1 python benchmarks/keyset_depth.py --postgres postgresql://postgres@127.0.0.1:5432/keyset_bench

`benchmarks/keyset.py` interleaves every ordering, page and method (OFFSET page 25,000 included, which reads half
the table) a few calls at a time; this one isolates the keyset call itself: `paginate_sync` on psycopg 3 for
`ORDER BY created, id`, page 1 and the page after row 499,999 (page 25,000), 5 rounds of --calls each, medians,
with psycopg's automatic server-side prepare on (its default) and off (`prepare_threshold=None`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keyset import SECRET, Item

from overdrive.db import Paginator
from overdrive.db._ordering import parse_ordering

PAGE = 20
DEEP_PAGE = 25_000


def per_call(session: Session, paginator: Paginator, query: sa.Select[Any], cursor: str | None, calls: int) -> float:
    """Median over 5 rounds of milliseconds per `paginate_sync` call."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            session.expunge_all()
            paginator.paginate_sync(session, query, first=PAGE, after=cursor)
        rounds.append((time.perf_counter() - started) / calls * 1e3)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postgres", required=True, help="URL of the keyset_bench database")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    url = "postgresql+psycopg://" + args.postgres.split("://", 1)[1]
    for label, connect_args in (("server-side prepare (default)", {}), ("no prepare", {"prepare_threshold": None})):
        engine = sa.create_engine(url, connect_args=connect_args)
        paginator = Paginator(secret=SECRET)
        query = sa.select(Item).order_by(Item.created, Item.id)
        with Session(engine) as session:
            keys, fingerprint = parse_ordering(query)
            columns = query.with_only_columns(*(key.expr for key in keys))
            row = session.execute(columns.offset((DEEP_PAGE - 1) * PAGE - 1).limit(1)).one()
            deep = paginator._codec.encode(fingerprint, tuple(row))

            first = per_call(session, paginator, query, None, args.calls)
            far = per_call(session, paginator, query, deep, args.calls)
        engine.dispose()
        print(f"{label}: page 1 {first:.3f} ms, page {DEEP_PAGE:,} {far:.3f} ms, ratio {far / first:.2f}x")


if __name__ == "__main__":
    main()
