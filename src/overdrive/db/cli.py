"""The ``overdrive db`` command group: ``report`` shows the costliest queries, ``advise`` proposes indexes."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.console import Console

from overdrive.db.report_command import report
from overdrive.exceptions import OverdriveError

__all__ = ["db"]


@click.group("db")
def db() -> None:
    """Find and fix database bottlenecks: slow-query reports and the index advisor."""


db.add_command(report)


@db.command("advise")
@click.argument("database_url")
@click.option(
    "--queries", "queries_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="A report from `overdrive db report --json`, or a .sql file of statements separated by `;`.",
)  # fmt: skip
@click.option(
    "--top", type=click.IntRange(min=1), default=20, show_default=True, help="Analyse the N heaviest queries."
)
@click.option(
    "--min-improvement", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
    help="Keep an index only when it cuts a statement's cost by at least this share.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON (schema overdrive.db.advice/1).")
def advise_command(database_url: str, queries_path: Path, top: int, min_improvement: float, as_json: bool) -> None:
    """Propose indexes for the statements in --queries, each verified on DATABASE_URL first.

    PostgreSQL tries candidates as HypoPG hypothetical indexes; SQLite builds them inside a transaction that is
    rolled back. Nothing is left behind. In a .sql file, literals stand for parameters, so no partial index is
    proposed from them; a report's statements keep their placeholders and real constants.
    """
    from overdrive.db._command import AdviseRun  # noqa: PLC0415 - loads SQLAlchemy and sqlglot on demand
    from overdrive.db._queries import load_queries  # noqa: PLC0415

    try:
        loaded = load_queries(queries_path, top)
        run = AdviseRun(url=database_url, queries=loaded.queries, partial=loaded.literals_are_constants)
        run.execute(min_improvement)
    except OverdriveError as exc:
        raise click.ClickException(str(exc)) from exc
    console = Console(highlight=False, soft_wrap=True)
    if as_json:
        click.echo(orjson.dumps(run.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        run.render(console)
