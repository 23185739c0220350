"""The slow-query report from a monitor, a real PostgreSQL log and pg_stat_statements, via Python and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from rich.console import Console
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.db import QueryMonitor, QueryScopeMiddleware
from overdrive.db.report import REPORT_SCHEMA, QueryReport, ReportError, render_html, render_table
from overdrive.db.report_command import report
from tests import services

pytestmark = pytest.mark.anyio


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[sa.Engine, QueryMonitor]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    monitor = QueryMonitor()
    monitor.instrument(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("create table t (id integer primary key, name text)")
        conn.execute(sa.text("insert into t (id, name) values (:i, :n)"), [{"i": i, "n": f"n{i}"} for i in range(200)])
        for i in range(30):
            conn.execute(sa.text("select name from t where id = :i"), {"i": i}).all()
        conn.execute(sa.text("select count(*) from t where name like '%1%'")).all()
    yield engine, monitor
    monitor.uninstrument()
    engine.dispose()


def test_a_monitor_report_round_trips_through_json_and_renders(monitored: tuple[sa.Engine, Any]) -> None:
    _, monitor = monitored
    result = QueryReport.from_store(monitor.store, dialect=monitor.dialect, top=10, by="count")
    document = result.to_json()
    assert document["schema"] == REPORT_SCHEMA
    assert document["dialect"] == "sqlite"
    lookup = next(q for q in document["queries"] if q["normalized"] == "select name from t where id = ?")
    assert lookup["count"] == 30
    assert lookup["p50_ms"] is not None
    assert lookup["call_site"].startswith(__file__)
    again = QueryReport.from_json(orjson.loads(orjson.dumps(document)))
    assert again.queries == result.queries
    console = Console(record=True, width=200)
    console.print(render_table(again))
    text = console.export_text()
    assert "select name from t where id = ?" in text
    assert "30" in text
    page = render_html(again)
    assert page.startswith("<!doctype html>")
    assert "select name from t where id = ?" in page
    assert "<script" not in page


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"schema": "overdrive.load/1"}, "Not an Overdrive query report"),
        ([], "Not an Overdrive query report"),
        ({"schema": REPORT_SCHEMA, "queries": {}}, "must be a list"),
        ({"schema": REPORT_SCHEMA, "queries": [{"count": 1}]}, "lacks fingerprint"),
        (
            {"schema": REPORT_SCHEMA, "queries": [{"fingerprint": "x", "normalized": "y", "count": 1, "z": 2}]},
            "unknown fields: z",
        ),
        ({"schema": REPORT_SCHEMA, "queries": [{"fingerprint": "x", "normalized": "y", "count": 1}]}, "incomplete"),
    ],
)
def test_foreign_or_broken_documents_are_refused(document: Any, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        QueryReport.from_json(document)


async def test_the_app_serves_its_report_to_loopback_only(monitored: tuple[sa.Engine, QueryMonitor]) -> None:
    _, monitor = monitored

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = QueryScopeMiddleware(Starlette(routes=[Route("/", hello)]), monitor, report_path="/_overdrive/db")
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=local, base_url="http://test") as client:
        served = await client.get("/_overdrive/db")
        assert served.status_code == 200
        assert served.headers["cache-control"] == "no-store"
        assert QueryReport.from_json(served.json()).queries
        assert (await client.post("/_overdrive/db")).status_code == 405
        assert (await client.get("/")).text == "hi"
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=remote, base_url="http://test") as client:
        refused = await client.get("/_overdrive/db")
    assert refused.status_code == 403
    assert "select" not in refused.text


def test_the_cli_renders_a_report_file_and_writes_html_and_json(
    monitored: tuple[sa.Engine, QueryMonitor], tmp_path: Path
) -> None:
    _, monitor = monitored
    source = tmp_path / "report.json"
    source.write_bytes(orjson.dumps(QueryReport.from_store(monitor.store).to_json()))
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        report, [str(source), "--top", "2", "--by", "count", "--html", str(html), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "select name from t where id = ?" in result.output
    written = orjson.loads(out.read_bytes())
    assert len(written["queries"]) == 2
    assert written["ranked_by"] == "count"
    assert written["queries"][0]["count"] >= written["queries"][1]["count"]
    assert "select name from t" in html.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one source"),
        (["a.json", "--pg-stat-statements", "postgresql://x"], "exactly one source"),
        (["missing.json"], "No report file"),
        (["http://127.0.0.1:1/report"], "Cannot fetch the report"),
    ],
)
def test_the_cli_explains_bad_sources(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(report, args)
    assert result.exit_code != 0
    assert message in result.output


def test_the_cli_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    garbage, foreign = tmp_path / "g.json", tmp_path / "f.json"
    garbage.write_text("{not json")
    foreign.write_text('{"schema": "overdrive.load/1"}')
    assert "is not JSON" in CliRunner(env={"COLUMNS": "200"}).invoke(report, [str(garbage)]).output
    assert "Not an Overdrive query report" in CliRunner(env={"COLUMNS": "200"}).invoke(report, [str(foreign)]).output


def test_a_log_without_duration_lines_says_so() -> None:
    result = QueryReport.from_postgres_log(["2026-01-01 LOG:  database system is ready\n"])
    assert result.queries == []
    assert "log_min_duration_statement" in result.notes[0]


@pytest.fixture(scope="module")
def logging_postgres() -> Iterator[tuple[str, Path]]:
    """A throwaway server logging every statement's duration, with pg_stat_statements loaded."""
    settings = (
        "logging_collector=on",
        "log_directory=log",
        "log_filename=statements.log",
        "log_min_duration_statement=0",
        "shared_preload_libraries=pg_stat_statements",
        "log_file_mode=0644",
    )
    with services.postgres_server(settings) as url:

        async def data_directory() -> str:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                return str(await conn.fetchval("SHOW data_directory"))
            finally:
                await conn.close()

        yield url, Path(asyncio.run(data_directory())) / "log" / "statements.log"


async def _workload(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS logged (id int primary key, note text)")
        await conn.execute("TRUNCATE logged")
        await conn.executemany("INSERT INTO logged VALUES ($1, $2)", [(i, f"note {i}") for i in range(40)])
        for i in range(25):
            await conn.fetch("SELECT note FROM logged WHERE id = $1", i)
        for ids in ([1, 2], [3, 4, 5, 6]):
            await conn.fetch(f"SELECT count(*) FROM logged WHERE id IN ({', '.join(map(str, ids))})")
        await conn.execute("SELECT pg_sleep(0.05)")
    finally:
        await conn.close()


@pytest.mark.integration
async def test_a_real_postgresql_log_becomes_a_fingerprint_report(logging_postgres: tuple[str, Path]) -> None:
    url, log = logging_postgres
    await _workload(url)
    await asyncio.sleep(0.3)  # the logging collector writes asynchronously
    with log.open(encoding="utf-8") as lines:
        result = QueryReport.from_postgres_log(lines)
    by_text = {q.normalized: q for q in result.queries}
    lookup = by_text["SELECT note FROM logged WHERE id = ?"]
    assert lookup.count >= 25
    assert lookup.example["parameters"] is not None
    assert set(lookup.example["parameters"]) == {"$1"}
    assert by_text["SELECT count(*) FROM logged WHERE id IN (...)"].count >= 2
    sleep = by_text["SELECT pg_sleep(?)"]
    assert sleep.max_ms >= 50
    assert result.queries[0].total_ms >= result.queries[-1].total_ms
    cli = CliRunner(env={"COLUMNS": "200"}).invoke(report, ["--pg-log", str(log), "--top", "5"])
    assert cli.exit_code == 0, cli.output
    assert "pg_sleep" in cli.output


@pytest.mark.integration
async def test_pg_stat_statements_through_the_cli(logging_postgres: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = logging_postgres
    await _workload(url)
    out = tmp_path / "pgss.json"
    cli = CliRunner(env={"COLUMNS": "200"}).invoke(report, ["--pg-stat-statements", url, "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    document = orjson.loads(out.read_bytes())
    assert document["source"] == "pg_stat_statements"
    lookup = next(q for q in document["queries"] if q["normalized"] == "SELECT note FROM logged WHERE id = ?")
    assert lookup["count"] >= 25
    assert lookup["p95_ms"] is None
    assert "no percentiles" in cli.output


@pytest.mark.integration
def test_pg_stat_statements_missing_is_explained(postgres_url: str) -> None:
    database = services.create_database(postgres_url, "overdrive_no_pgss")
    try:
        cli = CliRunner(env={"COLUMNS": "200"}).invoke(report, ["--pg-stat-statements", database])
    finally:
        services.drop_database(postgres_url, "overdrive_no_pgss")
    assert cli.exit_code == 1
    assert "shared_preload_libraries" in cli.output


def test_an_unreachable_database_is_explained() -> None:
    port = services.free_port()
    cli = CliRunner(env={"COLUMNS": "200"}).invoke(
        report, ["--pg-stat-statements", f"postgresql://postgres@127.0.0.1:{port}/x"]
    )
    assert cli.exit_code == 1
    assert "Cannot connect" in cli.output
