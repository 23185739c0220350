"""Query plans of the shop's database step, without and with its indexes: the evidence behind demo/indexes.py.

Runs representative requests through the `database` profile in-process, records every statement they execute,
then for each statement prints the plan (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE) and the median of
five timed executions, first with the indexes dropped and then with them created. Seed the database first.

    python benchmarks/demo_explain.py                                     # embedded SQLite, scale 1.0
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/overdrive_demo python benchmarks/demo_explain.py

It leaves the database with the indexes created (a naive app start drops them again).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import event

from overdrive.demo.app import create_app
from overdrive.demo.database import create_engine
from overdrive.demo.indexes import create_indexes, drop_indexes
from overdrive.demo.settings import ShopSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

REQUESTS = (
    "/products?category_id=5&sort=newest&page=3",
    "/products?category_id=5&sort=price_desc",
    "/products?sort=price_asc&page=40",
    "/products?sort=newest&page=7",
    "/products/{hot}",
    "/categories/5/top",
    "/orders/export?user_id=5000",
    "/search?q=steel",
)
RUNS = 5


async def _capture(settings: ShopSettings) -> list[tuple[str, str, Any]]:
    """Every (request, statement, parameters) the database profile runs for REQUESTS, cursor follow-up included."""
    engine = create_engine(settings)
    seen: list[tuple[str, str, Any]] = []
    current = [""]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if current[0] and not statement.startswith("BEGIN"):
            seen.append((current[0], statement, parameters))

    app = create_app(replace(settings, profile="database"), engine=engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://s") as c:
            hot = (await c.get("/search", params={"q": "the", "page_size": 1})).json()["items"][0]["id"]
            for path in REQUESTS:
                current[0] = path.format(hot=hot)
                response = await c.get(current[0])
                response.raise_for_status()
            current[0] = ""
            first = (await c.get("/products?category_id=5&sort=newest")).json()
            current[0] = "/products?category_id=5&sort=newest&page=2&cursor=…"
            await c.get("/products", params={"category_id": 5, "page": 2, "cursor": first["next_cursor"]})
    finally:
        await engine.dispose()
    return seen


async def _explain(engine: AsyncEngine, statement: str, parameters: Any) -> tuple[str, float]:
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            await conn.exec_driver_sql(statement, parameters)
            timings.append((time.perf_counter() - started) * 1000)
    plan = "\n".join(str(row[3]) if sqlite else str(row[0]) for row in rows)
    return plan, statistics.median(timings)


async def main() -> None:
    settings = ShopSettings.from_env()
    captured = await _capture(settings)
    engine = create_engine(settings)
    try:
        results: dict[bool, list[tuple[str, float]]] = {}
        for indexed in (False, True):
            await (create_indexes if indexed else drop_indexes)(engine)
            results[indexed] = [await _explain(engine, stmt, params) for _, stmt, params in captured]
    finally:
        await engine.dispose()
    print(f"# {engine.dialect.name}: plans of the database step's statements, median of {RUNS} runs\n")
    for (path, statement, _), before, after in zip(captured, results[False], results[True], strict=True):
        print(f"## `GET {path}`: {before[1]:,.2f} ms without, {after[1]:,.2f} ms with the indexes\n")
        print("```sql\n" + " ".join(statement.split())[:700] + "\n```\n")
        print("Without:\n```\n" + before[0] + "\n```\nWith:\n```\n" + after[0] + "\n```\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
