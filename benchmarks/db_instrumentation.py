"""Per-query cost of Overdrive's query monitor against bare SQLAlchemy, on SQLite in memory and PostgreSQL.

Run (from the repository root; PostgreSQL variants need --postgres):

    taskset -c 1 python benchmarks/db_instrumentation.py --rounds 15 --queries 5000 \
        --postgres postgresql://postgres@127.0.0.1:5432/postgres

Each round runs every variant for --queries point SELECTs (``SELECT id, name FROM bench_t WHERE id = :i``, Core
``connection.execute`` with a cached ``text()``), in a rotated order; reported is the median over rounds of
microseconds per query, wall clock and this process's CPU time (the client's own cost, which is what
instrumentation adds; wall time against PostgreSQL also holds the server's time and the machine's noise), and
each variant's CPU overhead over bare SQLAlchemy on the same backend:

- bare: no listener at all;
- cursor events: an empty ``before/after_cursor_execute`` pair with two clock reads, the floor of any tool built on
  those events (sqltap, the SQLAlchemy "profiling" recipe, most APM integrations);
- monitor: `QueryMonitor` timing, fingerprinting and recording every statement (outside any request scope);
- monitor in scope: the same inside a `monitor.scope()`, as under `QueryScopeMiddleware` (per-scope counts, N+1);
- monitor + call sites: ``record_statements=True``, a stack walk per statement (what assert_queries does).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from overdrive.db import QueryMonitor

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

Runner: TypeAlias = "Callable[[], tuple[float, float]]"
ROWS = 1000
VARIANTS = ("bare", "cursor events", "monitor", "monitor in scope", "monitor + call sites")
STATEMENT = sa.text("SELECT id, name FROM bench_t WHERE id = :i")


def _cursor_pair(engine: Engine) -> None:
    def before(*args: Any) -> None:  # (conn, cursor, statement, parameters, context, executemany)
        args[4].bench_t0 = time.perf_counter()

    def after(*args: Any) -> None:
        args[4].bench_elapsed = time.perf_counter() - args[4].bench_t0

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def _prepare(variant: str, engine: Engine) -> Callable[[], Any]:
    """Instrument `engine` for `variant`; returns the context to run each round's queries in."""
    if variant == "cursor events":
        _cursor_pair(engine)
    if variant.startswith("monitor"):
        monitor = QueryMonitor(n_plus_one="record")
        monitor.instrument(engine)
        if variant == "monitor in scope":
            return monitor.scope
        if variant == "monitor + call sites":
            return lambda: monitor.scope(record_statements=True)
    return nullcontext


def _setup_sql(conn: Any) -> None:
    conn.exec_driver_sql("DROP TABLE IF EXISTS bench_t")
    conn.exec_driver_sql("CREATE TABLE bench_t (id integer primary key, name varchar(40))")
    conn.execute(sa.text("INSERT INTO bench_t VALUES (:i, :n)"), [{"i": i, "n": f"name {i}"} for i in range(ROWS)])


def sync_backend(url: str, queries: int) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    for variant in VARIANTS:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            engine = sa.create_engine(url)
        with engine.begin() as conn:
            if variant == VARIANTS[0] or url.startswith("sqlite"):
                _setup_sql(conn)
        scope = _prepare(variant, engine)
        conn = engine.connect()

        def run(conn: Any = conn, scope: Callable[[], Any] = scope) -> tuple[float, float]:
            with scope():
                started, cpu = time.perf_counter(), time.process_time()
                for i in range(queries):
                    conn.execute(STATEMENT, {"i": i % ROWS}).all()
                return _per_query(started, cpu, queries)

        runners[variant] = run
    return runners


def async_backend(url: str, queries: int, loop: asyncio.AbstractEventLoop) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    for variant in VARIANTS:
        engine: AsyncEngine = create_async_engine(url)
        scope = _prepare(variant, engine.sync_engine)
        conn = loop.run_until_complete(engine.connect())

        async def run_async(conn: Any = conn, scope: Callable[[], Any] = scope) -> tuple[float, float]:
            with scope():
                started, cpu = time.perf_counter(), time.process_time()
                for i in range(queries):
                    (await conn.execute(STATEMENT, {"i": i % ROWS})).all()
                return _per_query(started, cpu, queries)

        def run(run_async: Callable[[], Coroutine[Any, Any, tuple[float, float]]] = run_async) -> tuple[float, float]:
            return loop.run_until_complete(run_async())

        runners[variant] = run
    return runners


def _per_query(started: float, cpu: float, queries: int) -> tuple[float, float]:
    return (time.perf_counter() - started) / queries * 1e6, (time.process_time() - cpu) / queries * 1e6


def measure(name: str, runners: dict[str, Runner], rounds: int) -> None:
    samples: dict[str, list[tuple[float, float]]] = {v: [] for v in runners}
    order = list(runners)
    for variant in order:  # warm-up: statement caches, connections
        runners[variant]()
    for r in range(rounds):
        shift = r % len(order)
        for variant in order[shift:] + order[:shift]:
            samples[variant].append(runners[variant]())
    bare_cpu = statistics.median(cpu for _, cpu in samples["bare"])
    print(f"\n{name}: medians over {rounds} rounds, µs per query")
    print(f"  {'variant':<22} {'wall':>8} {'client CPU':>11} {'CPU overhead':>13} {'CPU ratio':>10}")
    for variant in order:
        wall = statistics.median(w for w, _ in samples[variant])
        cpu = statistics.median(c for _, c in samples[variant])
        print(f"  {variant:<22} {wall:8.2f} {cpu:11.2f} {cpu - bare_cpu:13.2f} {cpu / bare_cpu:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (postgresql://...); adds psycopg and asyncpg runs")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, SQLAlchemy {sa.__version__}, {platform.machine()}")
    measure("SQLite in memory (pysqlite, sync)", sync_backend("sqlite://", args.queries), args.rounds)
    if args.postgres:
        base = args.postgres.split("://", 1)[1]
        measure("PostgreSQL (psycopg 3, sync)", sync_backend(f"postgresql+psycopg://{base}", args.queries), args.rounds)
        loop = asyncio.new_event_loop()
        runners = async_backend(f"postgresql+asyncpg://{base}", args.queries, loop)
        measure("PostgreSQL (asyncpg, async)", runners, args.rounds)


if __name__ == "__main__":
    main()
