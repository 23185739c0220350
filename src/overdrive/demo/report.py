"""Human-readable views of a demo run: rich tables for the terminal and one self-contained HTML page.

Both views share the same rows, so the terminal and the page always agree: one row per profile (per endpoint and
profile in the endpoint table), with ratios against the first profile, normally `naive`, so each cumulative step
shows its own gain. The terminal tables fit 100 columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Protocol

from rich import box
from rich.console import Group
from rich.table import Table

from overdrive._svg import BarSeries, LineSeries, bar_chart, line_chart

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from overdrive.demo.results import DemoResult, EndpointResult, LatencySummary

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


class _Figures(Protocol):
    """What a row shows: a whole profile's run (`ProfileResult`) or one endpoint's share (`EndpointResult`)."""

    @property
    def throughput(self) -> float: ...
    @property
    def latency(self) -> LatencySummary: ...
    @property
    def error_rate(self) -> float: ...
    @property
    def queries_per_request(self) -> float | None: ...


@dataclass(frozen=True)
class _Column:
    label: str
    text: Callable[[_Figures], str]
    terminal: bool = True


def _versus(value: Callable[[_Figures], float | None], base: _Figures | None) -> Callable[[_Figures], str]:
    def text(figures: _Figures) -> str:
        if figures is base:
            return "baseline"
        return _MISSING if base is None else _ratio(value(base), value(figures))

    return text


def _columns(base: _Figures | None, base_name: str) -> list[_Column]:
    """The columns of both tables; the ratios compare each row with `base` (None: no ratio columns)."""
    columns = [
        _Column("req/s", lambda f: _rate(f.throughput)),
        _Column("p50 ms", lambda f: _ms(f.latency.p50)),
        _Column("p95 ms", lambda f: _ms(f.latency.p95)),
        _Column("p99 ms", lambda f: _ms(f.latency.p99)),
        _Column("err %", lambda f: f"{f.error_rate * 100:.2f}"),
        _Column("DB q/req", lambda f: _optional(f.queries_per_request)),
    ]
    if base is not None:
        columns += [
            _Column(f"req/s vs {base_name}", _versus(lambda f: f.throughput, base)),
            _Column(f"p95 vs {base_name}", _versus(lambda f: f.latency.p95, base)),
            _Column(f"DB q/req vs {base_name}", _versus(lambda f: f.queries_per_request, base), terminal=False),
        ]
    return columns


def _summary_columns(result: DemoResult) -> list[_Column]:
    profiles = result.profiles
    return _columns(profiles[0] if len(profiles) > 1 else None, profiles[0].profile)


def _summary_rows(result: DemoResult, columns: Sequence[_Column]) -> list[list[str]]:
    return [[p.profile, *(c.text(p) for c in columns)] for p in result.profiles]


def _endpoint_names(result: DemoResult) -> list[str]:
    return list(dict.fromkeys(e.name for p in result.profiles for e in p.endpoints))


def _endpoint_sections(result: DemoResult) -> list[tuple[str, list[tuple[str, EndpointResult | None]]]]:
    """Per endpoint, each profile's figures for it (None where the profile sent it no request)."""
    by_profile = [(p.profile, {e.name: e for e in p.endpoints}) for p in result.profiles]
    return [(name, [(profile, found.get(name)) for profile, found in by_profile]) for name in _endpoint_names(result)]


def _endpoint_columns(entries: list[tuple[str, EndpointResult | None]], *, terminal: bool) -> list[_Column]:
    base = entries[0][1] if len(entries) > 1 else None
    return [c for c in _columns(base, entries[0][0]) if c.terminal or not terminal]


def _endpoint_rows(entries: list[tuple[str, EndpointResult | None]], columns: Sequence[_Column]) -> list[list[str]]:
    return [
        [profile, *([_MISSING] * len(columns) if found is None else (c.text(found) for c in columns))]
        for profile, found in entries
    ]


def render_table(result: DemoResult) -> Table:
    """Build the summary: one row per profile, with its ratios against the first profile.

    Args:
        result: A finished demo run with at least one profile.

    Returns:
        A rich table with throughput, latency percentiles, error rate and DB queries per request.

    """
    columns = [c for c in _summary_columns(result) if c.terminal]
    return _rich_table("Demo summary", ["Profile", *(c.label for c in columns)], _summary_rows(result, columns))


def render_endpoint_table(result: DemoResult) -> Group:
    """Build the per-endpoint view for a terminal: a small table per endpoint, titled with it, a row per profile.

    Args:
        result: A finished demo run with at least one profile.

    Returns:
        Rich tables with req/s, latencies, errors, queries per request and ratios for every endpoint and profile.

    """
    tables = []
    for name, entries in _endpoint_sections(result):
        columns = _endpoint_columns(entries, terminal=True)
        tables.append(_rich_table(name, ["Profile", *(c.label for c in columns)], _endpoint_rows(entries, columns)))
    return Group(*tables)


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
        summary=_html_table(
            ["Profile", *(c.label for c in _summary_columns(result))], _summary_rows(result, _summary_columns(result))
        ),
        endpoints=_html_endpoint_table(result),
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


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=box.SIMPLE_HEAD)
    for index, label in enumerate(header):
        table.add_column(label, justify="left" if index == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _html_endpoint_table(result: DemoResult) -> str:
    """One table: a row per endpoint and profile, the endpoint named on its first row."""
    header: list[str] = []
    rows: list[list[str]] = []
    for name, entries in _endpoint_sections(result):
        columns = _endpoint_columns(entries, terminal=False)
        header = ["Endpoint", "Profile", *(c.label for c in columns)]
        rows += [[name if index == 0 else "", *row] for index, row in enumerate(_endpoint_rows(entries, columns))]
    return _html_table(header, rows)


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
