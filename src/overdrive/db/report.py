"""The slow-query report: the costliest statement fingerprints, from a monitor, a PostgreSQL log or pg_stat_statements.

A `QueryReport` is a ranked list of `StatsSnapshot` rows with where they came from. It is built from

- a running `QueryMonitor` (`from_store`), with percentiles, call sites, example parameters and captured plans;
- a PostgreSQL server log written with ``log_min_duration_statement`` (`from_postgres_log`): the statements are
  fingerprinted and aggregated here, so the log gets the same per-fingerprint percentiles;
- the ``pg_stat_statements`` view (`from_pg_stat_statements`): counts, times and rows, no percentiles.

It renders as a terminal table (`render_table`), a self-contained HTML page (`render_html`) and JSON
(``overdrive.db.report/1``, `to_json` / `from_json`), which ``overdrive db advise`` reads.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from overdrive.db.fingerprint import Fingerprinter
from overdrive.db.querystats import QueryStore, StatsSnapshot

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sqlalchemy.engine import Connection

__all__ = ["REPORT_SCHEMA", "QueryReport", "ReportError", "render_html", "render_table"]

REPORT_SCHEMA = "overdrive.db.report/1"
RANKINGS = ("total", "mean", "p95", "count")
_RANKING_LABELS = {"total": "total time", "mean": "mean time", "p95": "p95 time", "count": "calls"}
_LOG_LINE = re.compile(
    r"\bLOG:\s+duration: (?P<ms>\d+(?:\.\d+)?) ms\s+(?P<kind>statement|execute [^:]*):\s?(?P<sql>.*)"
)
_DETAIL = re.compile(r"\bDETAIL:\s+[Pp]arameters: (?P<params>.*)")
_PARAMETER = re.compile(r"(\$\d+) = (NULL|'(?:[^']|'')*')")
_SNAPSHOT_FIELDS = set(StatsSnapshot.__dataclass_fields__)


class ReportError(ValueError):
    """A report source cannot be read: wrong schema, malformed JSON rows, or an unusable database view."""


@dataclass(frozen=True, kw_only=True)
class QueryReport:
    """Ranked per-fingerprint figures and their source.

    Attributes:
        source: ``monitor``, ``postgresql log`` or ``pg_stat_statements``.
        dialect: the database dialect the statements were written for, when known.
        queries: the fingerprints, costliest first by `ranked_by`.
        ranked_by: ``total``, ``mean``, ``p95`` or ``count``.
        generated_at: when the report was made (Unix time).
        notes: caveats a reader needs (e.g. "no percentiles in pg_stat_statements").

    """

    source: str
    dialect: str | None
    queries: list[StatsSnapshot]
    ranked_by: str = "total"
    generated_at: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ sources

    @classmethod
    def from_store(
        cls, store: QueryStore, *, dialect: str | None = None, top: int | None = None, by: str = "total"
    ) -> QueryReport:
        """The report of a monitor's store (`QueryMonitor.store`)."""
        return cls(source="monitor", dialect=dialect, queries=store.snapshots(top, by=by), ranked_by=by)

    @classmethod
    def from_postgres_log(cls, lines: Iterable[str], *, top: int | None = None, by: str = "total") -> QueryReport:
        """Aggregate the ``duration: ... ms statement|execute`` lines of a PostgreSQL log.

        Multi-line statements (continuation lines start with a tab) and the ``DETAIL: parameters:`` line of
        extended-protocol executions are understood; parse and bind phases are not counted as executions.
        """
        store = QueryStore(max_fingerprints=1_000_000)
        fingerprint = Fingerprinter()
        pending: tuple[float, list[str]] | None = None
        last = None

        def flush() -> None:
            nonlocal pending, last
            if pending is not None:
                statement = "\n".join(pending[1]).strip()
                stats, _ = store.stats_for(fingerprint(statement))
                stats.record(pending[0] / 1000, statement, None, -1)
                last = stats
            pending = None

        executions = 0
        for raw in lines:
            line = raw.rstrip("\n")
            if pending is not None and line.startswith("\t"):
                pending[1].append(line[1:])
                continue
            flush()
            if (match := _LOG_LINE.search(line)) is not None:
                pending = (float(match["ms"]), [match["sql"]])
                executions += 1
            elif (detail := _DETAIL.search(line)) is not None and last is not None:
                if last.example_parameters is None and last.example_statement:
                    last.example_parameters = _log_parameters(detail["params"])
                last = None
        flush()
        notes = [] if executions else ["No 'duration:' lines found: was log_min_duration_statement set?"]
        return cls(source="postgresql log", dialect="postgresql", queries=store.snapshots(top, by=by), notes=notes)

    @classmethod
    def from_pg_stat_statements(cls, connection: Connection, *, top: int | None = None) -> QueryReport:
        """Read the ``pg_stat_statements`` view through a sync SQLAlchemy connection (PostgreSQL 13 or newer).

        Raises:
            ReportError: the extension is not installed in this database or not loaded by the server.

        """
        from sqlalchemy import exc, text  # noqa: PLC0415 -- SQLAlchemy only for this source

        sql = text(
            "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows "
            "FROM pg_stat_statements WHERE calls > 0 AND query NOT LIKE '%pg_stat_statements%' "
            "ORDER BY total_exec_time DESC LIMIT :limit"
        )
        try:
            rows = connection.execute(sql, {"limit": 1_000_000 if top is None else top}).all()
        except exc.DBAPIError as error:
            connection.rollback()
            msg = (
                "pg_stat_statements cannot be read here: it needs shared_preload_libraries = 'pg_stat_statements' "
                f"in postgresql.conf and CREATE EXTENSION pg_stat_statements in this database ({error.orig})."
            )
            raise ReportError(msg) from error
        fingerprint = Fingerprinter()
        merged: dict[str, dict[str, Any]] = {}
        for query, calls, total_ms, _mean_ms, max_ms, row_count in rows:
            fp = fingerprint(query)
            row = merged.setdefault(
                fp.id,
                {"fp": fp, "count": 0, "total_ms": 0.0, "max_ms": 0.0, "rows": 0, "example": query},
            )
            row["count"] += calls
            row["total_ms"] += total_ms
            row["max_ms"] = max(row["max_ms"], max_ms)
            row["rows"] += row_count
        queries = [
            StatsSnapshot(
                fingerprint=row["fp"].id,
                normalized=row["fp"].normalized,
                operation=row["fp"].operation,
                count=row["count"],
                total_ms=row["total_ms"],
                mean_ms=row["total_ms"] / row["count"],
                p50_ms=None,
                p95_ms=None,
                p99_ms=None,
                max_ms=row["max_ms"],
                rows=row["rows"],
                call_site=None,
                example={"statement": row["example"], "parameters": None},
            )
            for row in sorted(merged.values(), key=lambda r: r["total_ms"], reverse=True)
        ]
        notes = ["pg_stat_statements keeps no percentiles; p50/p95/p99 are blank."]
        return cls(source="pg_stat_statements", dialect="postgresql", queries=queries, notes=notes)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The ``overdrive.db.report/1`` document."""
        return {
            "schema": REPORT_SCHEMA,
            "source": self.source,
            "dialect": self.dialect,
            "ranked_by": self.ranked_by,
            "generated_at": self.generated_at,
            "notes": list(self.notes),
            "queries": [asdict(q) for q in self.queries],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> QueryReport:
        """Read an ``overdrive.db.report/1`` document.

        Raises:
            ReportError: another schema, or rows with missing or unknown fields.

        """
        if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA:
            found = document.get("schema") if isinstance(document, dict) else type(document).__name__
            msg = f"Not an Overdrive query report: expected schema {REPORT_SCHEMA!r}, found {found!r}."
            raise ReportError(msg)
        rows = document.get("queries")
        if not isinstance(rows, list):
            msg = "The report's 'queries' must be a list."
            raise ReportError(msg)
        queries = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or not {"fingerprint", "normalized", "count"} <= row.keys():
                msg = f"Query {index} of the report lacks fingerprint, normalized or count."
                raise ReportError(msg)
            unknown = row.keys() - _SNAPSHOT_FIELDS
            if unknown:
                msg = f"Query {index} of the report has unknown fields: {', '.join(sorted(unknown))}."
                raise ReportError(msg)
            try:
                queries.append(StatsSnapshot(**row))
            except TypeError as error:
                msg = f"Query {index} of the report is incomplete: {error}."
                raise ReportError(msg) from error
        return cls(
            source=str(document.get("source", "unknown")),
            dialect=document.get("dialect"),
            queries=queries,
            ranked_by=str(document.get("ranked_by", "total")),
            generated_at=float(document.get("generated_at", 0.0)),
            notes=[str(n) for n in document.get("notes", [])],
        )


def _log_parameters(text: str) -> dict[str, str | None]:
    return {
        name: None if value == "NULL" else value[1:-1].replace("''", "'") for name, value in _PARAMETER.findall(text)
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"  # noqa: PLR2004 -- three significant digits


def render_table(report: QueryReport, *, top: int | None = 20, width: int = 60) -> Table:
    """The report as a rich table: one row per fingerprint, costliest first."""
    total = sum(q.total_ms for q in report.queries) or 1.0
    label = _RANKING_LABELS.get(report.ranked_by, report.ranked_by)
    table = Table(title=f"Costliest queries by {label} ({report.source})", title_justify="left")
    for header in ("#", "total ms", "share", "calls", "mean", "p50", "p95", "p99", "rows", "statement"):
        table.add_column(header, justify="left" if header == "statement" else "right", no_wrap=header != "statement")
    for rank, query in enumerate(report.queries[:top] if top else report.queries, 1):
        statement = Text(query.normalized if len(query.normalized) <= width else query.normalized[: width - 3] + "...")
        if query.call_site:
            statement.append(f"\n{query.call_site}", style="dim")
        table.add_row(
            str(rank),
            _ms(query.total_ms),
            f"{query.total_ms / total:.0%}",
            f"{query.count:,}",
            _ms(query.mean_ms),
            _ms(query.p50_ms),
            _ms(query.p95_ms),
            _ms(query.p99_ms),
            f"{query.rows:,}",
            statement,
        )
    return table


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{text-align:right;background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.sql{font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}
.bar{background:#c8553d;height:.5rem;border-radius:2px}.muted{color:#777}pre{white-space:pre-wrap;margin:.3rem 0}
"""


def render_html(report: QueryReport, *, top: int | None = 50) -> str:
    """The report as one self-contained HTML page (no scripts, no external resources)."""
    rows = report.queries[:top] if top else report.queries
    biggest = max((q.total_ms for q in rows), default=0.0) or 1.0
    body = []
    for rank, q in enumerate(rows, 1):
        details = [f"<pre>{escape(q.example.get('statement') or '')}</pre>"]
        if q.example.get("parameters") is not None:
            details.append(f"<div class=muted>parameters: {escape(repr(q.example['parameters']))}</div>")
        if q.call_site:
            details.append(f"<div class=muted>first run at {escape(q.call_site)}</div>")
        if q.plan is not None:
            details.append(f"<div>plan:</div><pre>{escape(str(q.plan))}</pre>")
        figures = "".join(
            f"<td class=n>{escape(value)}</td>"
            for value in (_ms(q.total_ms), f"{q.count:,}", _ms(q.mean_ms), _ms(q.p50_ms), _ms(q.p95_ms))
        ) + "".join(f"<td class=n>{escape(v)}</td>" for v in (_ms(q.p99_ms), _ms(q.max_ms), f"{q.rows:,}"))
        bar = f"<div class=bar style='width:{100 * q.total_ms / biggest:.1f}%'></div>"
        body.append(
            f"<tr><td class=n>{rank}</td>{figures}<td class=sql>{bar}{escape(q.normalized)}"
            f"<details><summary>example</summary>{''.join(details)}</details></td></tr>"
        )
    notes = "".join(f"<p class=muted>{escape(n)}</p>" for n in report.notes)
    header = "".join(
        f"<th>{h}</th>" for h in ("#", "total ms", "calls", "mean", "p50", "p95", "p99", "max", "rows", "statement")
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.generated_at))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Overdrive query report</title>"
        f"<style>{_STYLE}</style></head><body><h1>Costliest queries by "
        f"{escape(_RANKING_LABELS.get(report.ranked_by, report.ranked_by))}</h1>"
        f"<p class=muted>source: {escape(report.source)}; dialect: {escape(report.dialect or 'unknown')}; "
        f"{len(report.queries)} fingerprints; {stamp}</p>{notes}"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></body></html>"
    )
