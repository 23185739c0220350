"""Reports of a load run: the terminal table, and a self-contained HTML page with plots per request name."""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from rich.table import Table

from overdrive._svg import LineSeries, format_number, line_chart

if TYPE_CHECKING:
    from pathlib import Path

    from overdrive.loadtest.result import LatencyStats, LoadResult, TimelinePoint

__all__ = ["render_html", "render_table", "summary_lines", "write_html"]

_COLUMNS = ("p50", "p90", "p99", "p99.9", "p99.99")


def _ms(value: float) -> str:
    return format_number(value, 3)


def _row(name: str, requests: int, rate: float, errors: int, latency: LatencyStats) -> list[str]:
    return [
        name,
        f"{requests:,}",
        f"{rate:,.1f}",
        f"{errors:,}",
        *(_ms(latency.percentiles[c]) for c in _COLUMNS),
        _ms(latency.max),
    ]


def render_table(result: LoadResult) -> Table:
    """The final table: one row per request name and a total, latencies in ms."""
    corrected = " (from intended send time)" if result.model == "open" else ""
    table = Table(title=f"{result.model} model, {result.elapsed_s:.1f} s, {result.procs} worker(s){corrected}")
    table.add_column("Request", no_wrap=True)
    for label in ("requests", "req/s", "errors", *(f"{c} ms" for c in _COLUMNS), "max ms"):
        table.add_column(label, justify="right", no_wrap=True)
    elapsed = result.elapsed_s or 1.0
    for item in result.names:
        table.add_row(*_row(item.name, item.requests, item.requests / elapsed, item.errors, item.latency))
    table.add_row(*_row("all", result.completed, result.rate, result.errors, result.latency), style="bold")
    if result.service is not None:
        table.add_row(*_row("service time", result.completed, result.rate, result.errors, result.service), style="dim")
    if result.corrected is not None:
        row = _row("CO-corrected (estimate)", result.completed, result.rate, result.errors, result.corrected)
        table.add_row(*row, style="dim")
    return table


def summary_lines(result: LoadResult) -> list[str]:
    """Plain-text facts under the table: error breakdown, lateness, warnings."""
    lines = []
    if result.transport_errors:
        kinds = ", ".join(f"{kind}: {count:,}" for kind, count in result.transport_errors.items())
        lines.append(f"transport errors: {kinds}")
    if result.unanswered:
        lines.append(f"unanswered at the end: {result.unanswered:,}")
    if result.model == "open":
        target = f"{result.target_rate:,.0f}" if result.target_rate else "?"
        lines.append(
            f"target {target} req/s, sent {result.sent / (result.elapsed_s or 1):,.0f} req/s; "
            f"late {result.late:,}, dropped {result.dropped:,}"
        )
    cpu = ", ".join(f"{c:.0%}" for c in result.cpu_utilization)
    lines.append(f"generator CPU per worker: {cpu}")
    return lines


def _distribution(latency: LatencyStats) -> list[tuple[float, float]]:
    histogram = latency.to_histogram()
    if not histogram.count:
        return []
    top = min(5.0, math.log10(max(10, histogram.count)))
    steps = [i / 8 for i in range(int(top * 8) + 1)]
    values = histogram.percentiles(100 * (1 - 10**-x) for x in steps)
    return [(x, values[100 * (1 - 10**-x)] / 1000) for x in steps]


def _series(points: list[TimelinePoint], attribute: str) -> list[tuple[float, float]]:
    return [(float(p.second), float(getattr(p, attribute))) for p in points]


def render_html(result: LoadResult) -> str:
    """The report as one HTML document: tables and inline SVG charts, nothing external."""
    over_time = [LineSeries(name=f"{n.name} p99", points=_series(n.timeline, "p99")) for n in result.names]
    over_time.append(LineSeries(name="all p50", points=_series(result.timeline, "p50")))
    charts = [
        line_chart(title="p99 latency per second", series=over_time, x_label="second", y_label="ms", log=True),
        line_chart(
            title="Requests per second",
            series=[LineSeries(name="answered", points=_series(result.timeline, "requests"))],
            x_label="second",
            y_label="req/s",
        ),
        line_chart(
            title="Latency by percentile (x: nines, 1 = p90, 2 = p99, 3 = p99.9)",
            series=[LineSeries(name=n.name, points=_distribution(n.latency)) for n in result.names],
            x_label="percentile, in nines",
            y_label="ms",
            log=True,
        ),
    ]
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(cell)}</td>"
            for cell in _row(n.name, n.requests, n.requests / (result.elapsed_s or 1), n.errors, n.latency)
        )
        + "</tr>"
        for n in result.names
    )
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in ("request", "requests", "req/s", "errors", *(f"{c} ms" for c in _COLUMNS), "max ms")
    )
    facts = "".join(f"<li>{escape(line)}</li>" for line in [*summary_lines(result), *result.warnings])
    figures = "".join(f"<figure>{chart}</figure>" for chart in charts)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>overdrive load: {escape(result.target)}</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child"
        "{text-align:left}figure{display:inline-block;margin:1em}</style></head><body>"
        f"<h1>overdrive load: {escape(result.target)}</h1>"
        f"<p>{escape(result.started_at)} — {escape(result.model)} model — {result.elapsed_s:.1f} s — "
        f"{result.procs} worker process(es) — {result.completed:,} answered, {result.errors:,} errors</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table><ul>{facts}</ul>{figures}"
        "</body></html>"
    )


def write_html(result: LoadResult, path: Path) -> Path:
    """Write `render_html(result)` to `path`."""
    path.write_text(render_html(result), encoding="utf-8")
    return path
