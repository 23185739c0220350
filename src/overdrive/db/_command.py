"""The work of ``overdrive db advise``: connect, drop the statements that cannot be advised on, advise, report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from overdrive.db._candidates import Dialect, statement_kind
from overdrive.db._placeholders import inline
from overdrive.db._send import send
from overdrive.db.advisor import IndexAdvice, advise
from overdrive.db.sample import QuerySample
from overdrive.exceptions import ExplainError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Connection

    from overdrive.db._queries import NamedQuery

__all__ = ["ADVICE_SCHEMA", "AdviseRun"]

ADVICE_SCHEMA = "overdrive.db.advice/1"


@dataclass
class AdviseRun:
    """One ``db advise`` run: connect, drop the statements that cannot be advised on, advise, report."""

    url: str
    queries: tuple[NamedQuery, ...]
    partial: bool
    dialect: Dialect = "sqlite"
    advice: list[IndexAdvice] = field(default_factory=list)
    analysed: list[NamedQuery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def execute(self, min_improvement: float) -> None:
        """Run the advisor on a fresh connection that is rolled back at the end."""
        url = _async_url(self.url)
        asyncio.run(self._execute(url, min_improvement))

    async def _execute(self, url: str, min_improvement: float) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415 - loaded on demand

        engine = create_async_engine(url)
        try:
            try:
                connection = await engine.connect()
            except (OSError, DBAPIError) as exc:
                msg = f"Cannot connect to the database at {engine.url.render_as_string(hide_password=True)}: {exc}"
                raise ExplainError(msg) from exc
            try:
                await connection.run_sync(self._advise, min_improvement)
            finally:
                await connection.rollback()
                await connection.close()
        finally:
            await engine.dispose()

    def _advise(self, connection: Connection, min_improvement: float) -> None:
        self.dialect = "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
        self.analysed = [query for query in self.queries if self._usable(connection, query)]
        samples = [query.sample for query in self.analysed]
        self.advice = advise(connection, samples, min_improvement=min_improvement, partial_indexes=self.partial)

    def _usable(self, connection: Connection, query: NamedQuery) -> bool:
        if statement_kind(query.sample.statement, self.dialect) == "other":
            self.notes.append(f"Skipped {query.label}: only SELECT, UPDATE and DELETE statements are analysed.")
            return False
        try:
            literal = QuerySample(inline(query.sample))
        except ValueError as exc:
            self.notes.append(f"Skipped {query.label}: {exc}")
            return False
        connection.exec_driver_sql("SAVEPOINT overdrive_check")
        try:
            send(connection, literal, "EXPLAIN ")
        except ExplainError as exc:
            self.notes.append(f"Skipped {query.label}: {exc}")
            return False
        finally:
            connection.exec_driver_sql("ROLLBACK TO SAVEPOINT overdrive_check")
            connection.exec_driver_sql("RELEASE SAVEPOINT overdrive_check")
        return True

    def to_json(self) -> dict[str, Any]:
        """The advice as a JSON-ready dict (schema ``overdrive.db.advice/1``)."""
        unit = "planner cost" if self.dialect == "postgresql" else "VM steps"
        return {
            "schema": ADVICE_SCHEMA,
            "dialect": self.dialect,
            "cost_unit": unit,
            "analysed": len(self.analysed),
            "advice": [self._advice_json(item) for item in self.advice],
            "notes": self.notes,
        }

    def _advice_json(self, item: IndexAdvice) -> dict[str, Any]:
        return {
            "name": item.index.name,
            "table": item.index.table,
            "columns": [{"name": c.name, "descending": c.descending} for c in item.index.columns],
            "where": item.index.where,
            "statement": item.statement,
            "cost_before": item.cost_before,
            "cost_after": item.cost_after,
            "queries": [
                {
                    "label": self.analysed[gain.position].label,
                    "statement": gain.sample.statement,
                    "cost_before": gain.cost_before,
                    "cost_after": gain.cost_after,
                }
                for gain in item.queries
            ],
            "alternatives": [alternative.ddl(self.dialect) for alternative in item.alternatives],
        }

    def render(self, console: Console) -> None:
        """Print the advice for people."""
        unit = "planner cost" if self.dialect == "postgresql" else "VM steps"
        for note in self.notes:
            console.print(f"note: {note}", style="yellow", markup=False)
        if not self.advice:
            console.print(f"No index cuts the cost of the {len(self.analysed)} statements analysed enough.")
            return
        for number, item in enumerate(self.advice, 1):
            saved = 1 - item.cost_after / item.cost_before
            console.print(f"{number}. {item.statement}", style="bold", markup=False)
            console.print(f"   {unit}: {item.cost_before:,.1f} -> {item.cost_after:,.1f} ({saved:.1%} less)")
            for gain in item.queries:
                statement = " ".join(gain.sample.statement.split())
                label = self.analysed[gain.position].label
                console.print(f"   helps {label}: {statement[:100]}", markup=False)
            for alternative in item.alternatives:
                console.print(f"   alternative: {alternative.ddl(self.dialect)}", markup=False)


def _async_url(url: str) -> str:
    """The URL on the async driver the advisor runs on: asyncpg for PostgreSQL, aiosqlite for SQLite files."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            path = url.removeprefix(prefix)
            if not path or not Path(path).is_file():
                msg = f"There is no SQLite database file at {path!r}."
                raise ExplainError(msg)
            return "sqlite+aiosqlite:///" + path
    msg = f"DATABASE_URL must be a PostgreSQL or SQLite file URL, not {url!r}."
    raise ExplainError(msg)
