"""``overdrive db report``: render the slow-query report from a monitor's JSON, a live app, a log or a view."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson
from rich.console import Console

from overdrive.db.report import RANKINGS, QueryReport, ReportError, render_html, render_table

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from overdrive.db.querystats import StatsSnapshot

__all__ = ["report"]


def _sync_url(url: str) -> str:
    """A bare ``postgresql://`` URL names psycopg 3 (SQLAlchemy's own default, psycopg2, is not a dependency)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url.replace("+asyncpg", "+psycopg", 1)


def _from_source(source: str, *, top: int | None, by: str) -> QueryReport:
    if source.startswith(("http://", "https://")):
        import httpx  # noqa: PLC0415 -- only for live sources

        try:
            response = httpx.get(source, timeout=10.0)
        except httpx.HTTPError as error:
            msg = f"Cannot fetch the report from {source}: {error}."
            raise click.ClickException(msg) from error
        if response.status_code != 200:  # noqa: PLR2004
            msg = f"{source} answered {response.status_code}: {response.text[:200]}"
            raise click.ClickException(msg)
        data = response.content
    else:
        path = Path(source)
        if not path.is_file():
            msg = f"No report file at {source}."
            raise click.ClickException(msg)
        data = path.read_bytes()
    try:
        report = QueryReport.from_json(orjson.loads(data))
    except orjson.JSONDecodeError as error:
        msg = f"{source} is not JSON: {error}."
        raise click.ClickException(msg) from error
    ranked = sorted(report.queries, key=_rank_key(by), reverse=True)
    return QueryReport(
        source=report.source,
        dialect=report.dialect,
        queries=ranked[:top] if top else ranked,
        ranked_by=by,
        generated_at=report.generated_at,
        notes=report.notes,
    )


def _rank_key(by: str) -> Callable[[StatsSnapshot], float]:
    name = {"total": "total_ms", "mean": "mean_ms", "p95": "p95_ms", "count": "count"}[by]
    return lambda q: float(getattr(q, name) or 0)


@click.command()
@click.argument("source", required=False)
@click.option("--pg-log", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A PostgreSQL log file.")
@click.option("--pg-stat-statements", "stat_url", metavar="DATABASE_URL", help="Read pg_stat_statements there.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Rows to show.")
@click.option("--by", type=click.Choice(RANKINGS), default="total", show_default=True, help="Rank by.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write HTML here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here.")
def report(  # noqa: PLR0917 -- one parameter per CLI option
    source: str | None,
    pg_log: Path | None,
    stat_url: str | None,
    top: int,
    by: str,
    html_path: Path | None,
    json_path: Path | None,
) -> None:
    """Show the costliest queries, by statement fingerprint.

    The source is one of: SOURCE (a report JSON file, or the URL of an app's report endpoint), a PostgreSQL log
    (--pg-log, written with log_min_duration_statement), or the pg_stat_statements view.
    """
    chosen: Sequence[object] = [s for s in (source, pg_log, stat_url) if s is not None]
    if len(chosen) != 1:
        msg = "Give exactly one source: a report file or URL, --pg-log FILE, or --pg-stat-statements DATABASE_URL."
        raise click.UsageError(msg)
    try:
        if pg_log is not None:
            with pg_log.open(encoding="utf-8", errors="replace") as lines:
                result = QueryReport.from_postgres_log(lines, top=top, by=by)
        elif stat_url is not None:
            result = _from_pg_stat_statements(stat_url, top)
        else:
            assert source is not None  # noqa: S101 -- one of the three is set
            result = _from_source(source, top=top, by=by)
    except ReportError as error:
        raise click.ClickException(str(error)) from error
    console = Console()
    console.print(render_table(result, top=top))
    for note in result.notes:
        console.print(f"[dim]{note}[/]")
    if html_path is not None:
        html_path.write_text(render_html(result, top=top), encoding="utf-8")
        console.print(f"HTML report: {html_path}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
        console.print(f"JSON report: {json_path}")


def _from_pg_stat_statements(url: str, top: int) -> QueryReport:
    import sqlalchemy as sa  # noqa: PLC0415 -- only for this source

    try:
        engine = sa.create_engine(_sync_url(url))
    except (sa.exc.ArgumentError, ImportError) as error:
        msg = f"Cannot use the database URL {url!r}: {error}."
        raise click.ClickException(msg) from error
    try:
        with engine.connect() as connection:
            return QueryReport.from_pg_stat_statements(connection, top=top)
    except sa.exc.OperationalError as error:
        msg = f"Cannot connect to {engine.url.render_as_string(hide_password=True)}: {error.orig}."
        raise click.ClickException(msg) from error
    finally:
        engine.dispose()
