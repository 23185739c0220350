"""The index advisor on the demo shop's naive schema: the indexes it proposes and what they do for each endpoint.

Run (from the repository root, after `overdrive demo seed`; PostgreSQL needs HypoPG and a seeded database):

    taskset -c 1 python -m benchmarks.index_advisor --rounds 4 --repeats 5
    taskset -c 1 python -m benchmarks.index_advisor --rounds 4 --repeats 5 \
        --database-url postgresql://postgres@127.0.0.1:5432/advisor_bench

1. Capture: the demo app (naive profile, in-process through httpx's ASGI transport) serves --requests requests of
   each read endpoint of the workload mix (POST /orders is left out so the data set stays as seeded), while a
   `before_cursor_execute` listener records every statement with its parameters, per endpoint.
2. Advise: `overdrive.db.advise` on one example of each distinct statement (HypoPG on PostgreSQL, rolled-back
   trial indexes on SQLite).
3. Measure: every endpoint's captured statements are replayed with their own parameters (rows fetched), timed as
   milliseconds of database time per request. Each round measures without and with the proposed indexes (built
   for real, then dropped), in alternating order; the report holds the median over rounds of the median of
   --repeats replays.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import sqlalchemy
from rich.console import Console
from sqlalchemy import event

from overdrive.db import IndexAdvice, QuerySample, advise
from overdrive.demo.app import create_app
from overdrive.demo.database import create_engine
from overdrive.demo.generator import SeedPlan
from overdrive.demo.runner import seed_with_progress
from overdrive.demo.settings import ShopSettings
from overdrive.demo.workload import MIX, ShopWorkload

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Captured = dict[str, list[list[tuple[str, Any]]]]  # endpoint -> requests -> statements


async def capture(engine: AsyncEngine, settings: ShopSettings, requests: int, seed: int) -> Captured:
    """Serve `requests` requests of each read endpoint and record the statements each one sent."""
    current: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        current.append((statement, parameters))

    app = create_app(settings, engine=engine)
    workload = ShopWorkload(settings.plan, seed=seed)
    rng = random.Random(seed)
    captured: Captured = defaultdict(list)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for spec in (spec for spec in MIX if spec.method == "GET"):
                for _ in range(requests):
                    request = workload.draw(spec, rng)
                    current.clear()
                    response = await client.get(request.path)
                    response.raise_for_status()
                    captured[spec.name].append([s for s in current if not s[0].startswith(("BEGIN", "SAVEPOINT"))])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    return captured


def distinct(captured: Captured) -> list[QuerySample]:
    """One example of each distinct statement, in first-seen order."""
    seen: dict[str, QuerySample] = {}
    for requests in captured.values():
        for statements in requests:
            for statement, parameters in statements:
                seen.setdefault(statement, QuerySample(statement, tuple(parameters or ()) or None))
    return list(seen.values())


async def replay(connection: AsyncConnection, requests: list[list[tuple[str, Any]]]) -> float:
    """Milliseconds of database time per request, replaying every captured statement of the endpoint."""
    start = time.perf_counter()
    for statements in requests:
        for statement, parameters in statements:
            result = await connection.exec_driver_sql(statement, tuple(parameters or ()))
            if result.returns_rows:
                result.fetchall()
    return (time.perf_counter() - start) * 1000 / len(requests)


async def measure(engine: AsyncEngine, captured: Captured, repeats: int) -> dict[str, float]:
    async with engine.connect() as connection:
        for requests in captured.values():  # warm the caches once
            await replay(connection, requests)
        medians = {}
        for endpoint, requests in captured.items():
            medians[endpoint] = statistics.median([await replay(connection, requests) for _ in range(repeats)])
        await connection.rollback()
    return medians


async def apply(engine: AsyncEngine, advice: list[IndexAdvice], *, create: bool) -> None:
    async with engine.begin() as connection:
        for item in advice:
            if create:
                await connection.exec_driver_sql(item.index.definition(item.index.name))
            else:
                await connection.exec_driver_sql(f"DROP INDEX {item.index.name}")
        if create:
            for table in sorted({item.index.table for item in advice}):
                await connection.exec_driver_sql(f"ANALYZE {table}")


async def run(args: argparse.Namespace, settings: ShopSettings, console: Console) -> dict[str, Any]:
    engine = create_engine(settings)
    try:
        captured = await capture(engine, settings, args.requests, args.seed)
        samples = distinct(captured)
        console.print(f"captured {sum(len(r) for r in captured.values())} requests, {len(samples)} distinct statements")
        started = time.perf_counter()
        async with engine.connect() as connection:
            advice = await connection.run_sync(lambda c: advise(c, samples, min_improvement=args.min_improvement))
            await connection.rollback()
        advise_s = time.perf_counter() - started
        for item in advice:
            console.print(item.statement)
        rounds: dict[str, dict[str, list[float]]] = {"before": defaultdict(list), "after": defaultdict(list)}
        for number in range(args.rounds):
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for phase in order:
                if phase == "after":
                    await apply(engine, advice, create=True)
                try:
                    for endpoint, ms in (await measure(engine, captured, args.repeats)).items():
                        rounds[phase][endpoint].append(ms)
                finally:
                    if phase == "after":
                        await apply(engine, advice, create=False)
            console.print(f"round {number + 1}/{args.rounds} done")
        dialect = engine.dialect.name
    finally:
        await engine.dispose()
    return report(
        args=args, dialect=dialect, samples=samples, captured=captured, advice=advice, rounds=rounds, advise_s=advise_s
    )


def report(
    *,
    args: argparse.Namespace,
    dialect: str,
    samples: list[QuerySample],
    captured: Captured,
    advice: list[IndexAdvice],
    rounds: dict[str, dict[str, list[float]]],
    advise_s: float,
) -> dict[str, Any]:
    endpoint_of: dict[str, str] = {}
    for endpoint, requests in captured.items():
        for statements in requests:
            for statement, _ in statements:
                endpoint_of.setdefault(statement, endpoint)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "dialect": dialect,
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "args": vars(args),
        "distinct_statements": len(samples),
        "advise_seconds": round(advise_s, 2),
        "indexes": [
            {
                "statement": item.statement,
                "cost_before": item.cost_before,
                "cost_after": item.cost_after,
                "endpoints": sorted({endpoint_of[gain.sample.statement] for gain in item.queries}),
                "queries": len(item.queries),
            }
            for item in advice
        ],
        "endpoints": {
            endpoint: {
                "statements_per_request": statistics.mean(len(s) for s in captured[endpoint]),
                "before_ms": statistics.median(rounds["before"][endpoint]),
                "after_ms": statistics.median(rounds["after"][endpoint]),
                "before_rounds": rounds["before"][endpoint],
                "after_rounds": rounds["after"][endpoint],
            }
            for endpoint in captured
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        (
            f"Run of {result['when']} on {result['dialect']}: {result['distinct_statements']} distinct statements, "
            f"advised in {result['advise_seconds']} s."
        ),
        "",
        "| index proposed | cost before | cost after | endpoints |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| `{i['statement']}` | {i['cost_before']:,.0f} | {i['cost_after']:,.0f} | {', '.join(i['endpoints'])} |"
        for i in result["indexes"]
    ]
    lines += [
        "",
        "| endpoint | statements / request | DB ms / request before | after | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for endpoint, e in result["endpoints"].items():
        ratio = e["before_ms"] / e["after_ms"] if e["after_ms"] else float("inf")
        per_request = f"{e['statements_per_request']:.1f}"
        lines.append(f"| {endpoint} | {per_request} | {e['before_ms']:.2f} | {e['after_ms']:.2f} | {ratio:.1f}\u00d7 |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL URL; default: the embedded SQLite file.")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=20, help="Requests captured per endpoint.")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="Replays per endpoint per round.")
    parser.add_argument("--min-improvement", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    console = Console(stderr=True)
    settings = ShopSettings(database_url=args.database_url, plan=SeedPlan(scale=args.scale), confirmation_delay=0.0)
    seed_with_progress(settings, console)
    result = asyncio.run(run(args, settings, console))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"index_advisor-{result['dialect']}-{stamp}"
    (args.out / f"{name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str))
    text = markdown(result)
    (args.out / f"{name}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
