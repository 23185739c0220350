"""Human-readable views of a demo run: rich tables for the terminal and one self-contained HTML page.

Both views share the same rows, so the terminal and the page always agree. The ratio column compares the
last profile with the first (normally "tuned" against "naive"); with a single profile it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from rich.table import Table

from overdrive._svg import BarSeries, LineSeries, bar_chart, line_chart

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from overdrive.demo.results import DemoResult, EndpointResult, ProfileResult

__all__ = ["render_endpoint_table", "render_html", "render_table", "write_html"]

_MISSING = "n/a"
# Fewer decimals as latencies grow: "4.27", "42.7", "427.0", "4,270".
_MS_DECIMALS = ((10.0, 2), (1000.0, 1))


def _ms(value: float) -> str:
    decimals = next((d for bound, d in _MS_DECIMALS if value < bound), 0)
    return f"{value:,.{decimals}f}"


def _rate(value: float) -> str:
    return f"{value:,.1f}"


def _optional(value: float | None) -> str:
    return _MISSING if value is None else f"{value:,.1f}"


@dataclass(frozen=True)
class _Metric:
    label: str
    value: Callable[[ProfileResult], float | None]
    text: Callable[[float], str]


_METRICS = (
    _Metric("Throughput (req/s)", lambda p: p.throughput, _rate),
    _Metric("p50 latency (ms)", lambda p: p.latency.p50, _ms),
    _Metric("p95 latency (ms)", lambda p: p.latency.p95, _ms),
    _Metric("p99 latency (ms)", lambda p: p.latency.p99, _ms),
    _Metric("Error rate (%)", lambda p: p.error_rate * 100, lambda v: f"{v:.2f}"),
    _Metric("DB queries per request", lambda p: p.queries_per_request, lambda v: f"{v:,.1f}"),
)

_ENDPOINT_COLUMNS: tuple[tuple[str, Callable[[EndpointResult], str]], ...] = (
    ("req/s", lambda e: _rate(e.throughput)),
    ("p95 ms", lambda e: _ms(e.latency.p95)),
    ("errors", lambda e: f"{e.errors:,}"),
    ("queries/req", lambda e: _optional(e.queries_per_request)),
)


def render_table(result: DemoResult) -> Table:
    """Build the side-by-side summary: one column per profile, plus last-versus-first ratios.

    Args:
        result: A finished demo run with at least one profile.

    Returns:
        A rich table with throughput, latency percentiles, error rate and DB queries per request.

    """
    return _rich_table("Demo summary", _summary_header(result), _summary_rows(result))


def render_endpoint_table(result: DemoResult) -> Table:
    """Build the per-endpoint table for a terminal: one row per endpoint and profile, so it fits 100 columns.

    Args:
        result: A finished demo run with at least one profile.

    Returns:
        A rich table with req/s, p50, p95, p99, errors and queries per request for every endpoint and profile.

    """
    table = Table(title="Per endpoint", header_style="bold")
    table.add_column("Endpoint", no_wrap=True)
    table.add_column("Profile", no_wrap=True)
    for label in ("req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "queries/req"):
        table.add_column(label, justify="right", no_wrap=True)
    by_profile = [(p.profile, {e.name: e for e in p.endpoints}) for p in result.profiles]
    for name in _endpoint_names(result):
        for index, (profile, endpoints) in enumerate(by_profile):
            found = endpoints.get(name)
            figures = (
                [_MISSING] * 6
                if found is None
                else [
                    _rate(found.throughput),
                    _ms(found.latency.p50),
                    _ms(found.latency.p95),
                    _ms(found.latency.p99),
                    f"{found.errors:,}",
                    _optional(found.queries_per_request),
                ]
            )
            last = index == len(by_profile) - 1
            table.add_row(name if index == 0 else "", profile, *figures, end_section=last)
    return table


def render_html(result: DemoResult) -> str:
    """Render the whole report as one HTML document with inline CSS and SVG charts.

    Args:
        result: A finished demo run with at least one profile.

    Returns:
        The document; it references no external scripts, styles, fonts or images.

    """
    charts = "".join(f'<figure class="chart">{chart}</figure>' for chart in _charts(result))
    return _PAGE.format(
        title=escape(f"Overdrive demo — {result.started_at}"),
        meta=_meta(result),
        summary=_html_table(_summary_header(result), _summary_rows(result)),
        endpoints=_html_table(_endpoint_header(result), _endpoint_rows(result)),
        charts=charts,
    )


def write_html(result: DemoResult, path: Path) -> Path:
    """Write the HTML report (see `render_html`) to `path`.

    Args:
        result: A finished demo run with at least one profile.
        path: Where to write; the parent directory must exist.

    Returns:
        The path written.

    """
    path.write_text(render_html(result), encoding="utf-8")
    return path


def _ratio(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return _MISSING
    if first == last:
        return "same"
    if first <= 0 or last <= 0:
        return _MISSING
    return f"{last / first:.1f}x higher" if last > first else f"{first / last:.1f}x lower"


def _summary_header(result: DemoResult) -> list[str]:
    names = [p.profile for p in result.profiles]
    ratio = [f"{names[-1]} vs {names[0]}"] if len(names) > 1 else []
    return ["Metric", *names, *ratio]


def _summary_rows(result: DemoResult) -> list[list[str]]:
    rows = []
    for metric in _METRICS:
        values = [metric.value(p) for p in result.profiles]
        ratio = [_ratio(values[0], values[-1])] if len(values) > 1 else []
        rows.append([metric.label, *(_MISSING if v is None else metric.text(v) for v in values), *ratio])
    return rows


def _endpoint_names(result: DemoResult) -> list[str]:
    return list(dict.fromkeys(e.name for p in result.profiles for e in p.endpoints))


def _endpoint_header(result: DemoResult) -> list[str]:
    return ["Endpoint", *(f"{p.profile} {label}" for p in result.profiles for label, _ in _ENDPOINT_COLUMNS)]


def _endpoint_rows(result: DemoResult) -> list[list[str]]:
    by_profile = [{e.name: e for e in p.endpoints} for p in result.profiles]
    rows = []
    for name in _endpoint_names(result):
        cells = [name]
        for endpoints in by_profile:
            found = endpoints.get(name)
            cells += [_MISSING if found is None else text(found) for _, text in _ENDPOINT_COLUMNS]
        rows.append(cells)
    return rows


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, header_style="bold")
    for index, label in enumerate(header):
        table.add_column(label, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _meta(result: DemoResult) -> str:
    items = {
        "Date": result.started_at,
        "Server": result.server,
        "Driver": result.driver,
        "Database": result.database,
        "Scale": f"{result.scale:g}",
        "Concurrency": str(result.concurrency),
        "Duration": f"{result.duration_s:g} s per profile",
        "CPUs": str(result.cpus),
        "Python": result.python,
    }
    return "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items.items())


def _charts(result: DemoResult) -> list[str]:
    profiles, endpoints = result.profiles, _endpoint_names(result)
    by_profile = [{e.name: e for e in p.endpoints} for p in profiles]

    def per_endpoint(value: Callable[[EndpointResult], float | None]) -> list[BarSeries]:
        return [
            BarSeries(name=p.profile, values=[value(found[n]) if n in found else None for n in endpoints])
            for p, found in zip(profiles, by_profile, strict=True)
        ]

    def over_time(column: int) -> list[LineSeries]:
        return [LineSeries(name=p.profile, points=[(t[0], t[column]) for t in p.timeline]) for p in profiles]

    return [
        bar_chart(
            title="Throughput",
            groups=["all endpoints"],
            series=[BarSeries(name=p.profile, values=[p.throughput]) for p in profiles],
            unit="req/s",
            show_values=True,
        ),
        bar_chart(
            title="Latency percentiles",
            groups=["p50", "p95", "p99"],
            series=[BarSeries(name=p.profile, values=[p.latency.p50, p.latency.p95, p.latency.p99]) for p in profiles],
            unit="ms",
            log=True,
            show_values=True,
        ),
        bar_chart(
            title="p95 latency per endpoint",
            groups=endpoints,
            series=per_endpoint(lambda e: e.latency.p95),
            unit="ms",
            log=True,
        ),
        bar_chart(
            title="DB queries per request",
            groups=endpoints,
            series=per_endpoint(lambda e: e.queries_per_request),
            unit="queries",
        ),
        line_chart(
            title="p95 latency over time",
            series=over_time(2),
            x_label="second of the run",
            y_label="ms",
            log=True,
        ),
        line_chart(
            title="Throughput over time",
            series=over_time(1),
            x_label="second of the run",
            y_label="req/s",
        ),
    ]


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #222; margin: 2rem auto; max-width: 1360px; }}
body {{ padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; margin-bottom: .5rem; }}
h2 {{ font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .25rem; }}
dl {{ display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; margin: 0; }}
dl div {{ display: flex; gap: .4rem; }}
dt {{ color: #666; }}
dd {{ margin: 0; font-weight: 600; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .9rem; }}
th, td {{ padding: .3rem .7rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ border-bottom: 2px solid #ccc; }}
tbody tr:hover {{ background: #f6f8fa; }}
.scroll {{ overflow-x: auto; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.5rem; }}
.chart {{ margin: 0; }}
.chart svg {{ width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<dl>{meta}</dl>
<h2>Summary</h2>
<div class="scroll">{summary}</div>
<h2>Charts</h2>
<div class="charts">{charts}</div>
<h2>Per endpoint</h2>
<div class="scroll">{endpoints}</div>
</body>
</html>
"""
