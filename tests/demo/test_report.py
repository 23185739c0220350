"""The demo report: rich tables for the terminal and the self-contained HTML page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

from overdrive.demo.report import render_endpoint_table, render_html, render_table, write_html
from overdrive.demo.results import DemoResult, EndpointResult, LatencySummary, ProfileResult, summarize

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import RenderableType

ENDPOINTS = ("GET /products", "GET /products/{id}", "POST /orders <&>")
SVG_NS = "http://www.w3.org/2000/svg"


def _latency(p50: float, p95: float, p99: float) -> LatencySummary:
    return LatencySummary(count=100, mean=p50, p50=p50, p90=p95, p95=p95, p99=p99, p999=p99, max=p99)


def _profile(name: str, *, speed: float, queries: float | None) -> ProfileResult:
    endpoints = [
        EndpointResult(
            name=endpoint,
            requests=int(100 * speed),
            errors=index,
            throughput=10.0 * speed * (index + 1),
            latency=_latency(2.0 / speed, 40.0 / speed * (index + 1), 90.0 / speed),
            queries_per_request=None if queries is None else queries * (index + 1),
        )
        for index, endpoint in enumerate(ENDPOINTS)
    ]
    return ProfileResult(
        profile=name,
        duration_s=10.0,
        requests=int(300 * speed),
        errors=3,
        throughput=30.0 * speed,
        latency=_latency(2.5 / speed, 120.0 / speed, 800.0 / speed),
        queries_per_request=queries,
        endpoints=endpoints,
        timeline=[(float(t), 30.0 * speed + t, 120.0 / speed - t) for t in range(5)],
    )


def _demo(*profiles: ProfileResult) -> DemoResult:
    return DemoResult(
        started_at="2024-05-01T12:00:00Z",
        server="uvicorn",
        driver="httpx-load",
        database="sqlite",
        scale=0.1,
        concurrency=32,
        duration_s=10.0,
        cpus=8,
        python="3.11.7",
        profiles=list(profiles),
    )


def _two_profiles() -> DemoResult:
    return _demo(_profile("naive", speed=1.0, queries=21.0), _profile("tuned", speed=18.0, queries=1.5))


def _steps() -> DemoResult:
    return _demo(
        _profile("naive", speed=1.0, queries=21.0),
        _profile("database", speed=3.0, queries=2.0),
        _profile("caching", speed=12.0, queries=0.5),
        _profile("tuned", speed=18.0, queries=1.5),
    )


def _empty_profile(name: str) -> ProfileResult:
    zero = summarize([])
    endpoint = EndpointResult(name="GET /", requests=0, errors=0, throughput=0.0, latency=zero)
    return ProfileResult(
        profile=name,
        duration_s=0.0,
        requests=0,
        errors=0,
        throughput=0.0,
        latency=zero,
        queries_per_request=None,
        endpoints=[endpoint],
    )


def _text(renderable: RenderableType, width: int = 160) -> str:
    console = Console(record=True, width=width)
    console.print(renderable)
    return console.export_text()


def _row(text: str, first: str) -> list[str]:
    """The cells of the first line starting with `first` (tables are drawn without column rules)."""
    line = next(line for line in text.splitlines() if line.strip().startswith(first))
    return line.split()


def _svg_blocks(page: str) -> list[ET.Element]:
    # The page is our own output, not untrusted input.
    return [ET.fromstring(block) for block in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)]  # noqa: S314


class TestRichTables:
    def test_summary_has_a_row_per_step_with_ratios_against_naive(self) -> None:
        """Each profile is a row with its own figures and its req/s and p95 ratios against naive."""
        text = _text(render_table(_steps()))
        assert "req/s vs naive" in text
        assert "p95 vs naive" in text
        assert _row(text, "naive") == [
            "naive",
            "30.0",
            "2.50",
            "120.0",
            "800.0",
            "1.00",
            "21.0",
            "baseline",
            "baseline",
        ]
        assert _row(text, "database") == [
            "database", "90.0", "0.83", "40.0", "266.7", "0.33", "2.0", "3.0x", "higher", "3.0x", "lower",
        ]  # fmt: skip
        assert _row(text, "caching")[1] == "360.0"
        assert _row(text, "tuned") == [
            "tuned", "540.0", "0.14", "6.67", "44.4", "0.06", "1.5", "18.0x", "higher", "18.0x", "lower",
        ]  # fmt: skip

    @pytest.mark.parametrize("render", [render_table, render_endpoint_table])
    def test_tables_fit_100_columns_without_cutting_anything(self, render: Any) -> None:
        """At 100 columns nothing is wrapped or cut short: every figure and endpoint name is whole."""
        text = _text(render(_steps()), width=100)
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 100
        assert "…" not in text
        if render is render_endpoint_table:
            for name in ENDPOINTS:
                assert name in text
            assert _row(text, "tuned")[-4:] == ["18.0x", "higher", "18.0x", "lower"]

    def test_endpoint_table_lists_every_endpoint(self) -> None:
        """Each endpoint gets a row per profile with req/s, latencies, errors and queries."""
        text = _text(render_endpoint_table(_two_profiles()))
        for expected in (*ENDPOINTS, "naive", "tuned", "p95 ms", "DB q/req", "63.0", "540.0"):
            assert expected in text

    def test_single_profile_has_no_ratio_column(self) -> None:
        """With one profile there is nothing to compare, so no ratio column."""
        text = _text(render_table(_demo(_profile("naive", speed=1.0, queries=None))))
        assert " vs " not in text
        assert "n/a" in text  # queries per request unknown

    def test_zero_requests(self) -> None:
        """Profiles that completed nothing render zeros instead of dividing by zero."""
        result = _demo(_empty_profile("naive"), _empty_profile("tuned"))
        text = _text(render_table(result)) + _text(render_endpoint_table(result))
        assert "same" in text
        assert "0.00" in text


class TestHTML:
    def test_writes_a_self_contained_page(self, tmp_path: Path) -> None:
        """The page is written, and apart from the SVG namespace it references nothing outside itself."""
        path = write_html(_two_profiles(), tmp_path / "report.html")
        page = path.read_text(encoding="utf-8")
        assert path == tmp_path / "report.html"
        assert page.startswith("<!DOCTYPE html>")
        assert re.findall(r"https?://[^\s\"'<>]*", page.replace(SVG_NS, "")) == []
        assert "<script" not in page
        assert "<link" not in page

    def test_svg_charts_are_well_formed(self) -> None:
        """Each chart is a well-formed SVG element with a title and some drawing in it."""
        charts = _svg_blocks(render_html(_two_profiles()))
        assert len(charts) == 6
        for chart in charts:
            assert chart.tag == f"{{{SVG_NS}}}svg"
            assert chart.find(f"{{{SVG_NS}}}title") is not None
        assert all(chart.findall(f".//{{{SVG_NS}}}rect") for chart in charts[:4])
        assert all(chart.findall(f".//{{{SVG_NS}}}polyline") for chart in charts[4:])

    def test_every_step_is_a_row_with_its_ratios(self) -> None:
        """The page's tables have a row per profile (per endpoint too) and the queries ratio the terminal omits."""
        page = render_html(_steps())
        assert "<th>DB q/req vs naive</th>" in page
        assert "<td>tuned</td><td>540.0</td>" in page
        assert "<td>14.0x lower</td>" in page  # queries per request: 21 -> 1.5
        assert page.count("<td>caching</td>") == 1 + len(ENDPOINTS)

    def test_names_appear_escaped(self) -> None:
        """Every endpoint and profile name is on the page, escaped, and never raw."""
        page = render_html(_two_profiles())
        for name in (*ENDPOINTS, "naive", "tuned"):
            assert escape(name) in page
        assert "<&>" not in page

    def test_header_describes_the_run(self) -> None:
        """The header lists how the demo ran."""
        page = render_html(_two_profiles())
        for expected in ("2024-05-01T12:00:00Z", "uvicorn", "httpx-load", "sqlite", "32", "3.11.7"):
            assert expected in page

    def test_zero_requests_single_profile(self, tmp_path: Path) -> None:
        """A single profile that completed nothing still yields a well-formed page."""
        path = write_html(_demo(_empty_profile("naive")), tmp_path / "empty.html")
        charts = _svg_blocks(path.read_text(encoding="utf-8"))
        assert len(charts) == 6

    def test_log_scale_skips_non_positive_points(self) -> None:
        """A p95 of zero in the timeline breaks the log-scale line instead of failing."""
        profile = _profile("naive", speed=1.0, queries=None)
        timeline = [(0.0, 5.0, 10.0), (1.0, 0.0, 0.0), (2.0, 5.0, 20.0), (3.0, 6.0, 30.0)]
        result = _demo(ProfileResult(**{**profile.__dict__, "timeline": timeline}))
        latency_chart = _svg_blocks(render_html(result))[4]
        assert len(latency_chart.findall(f".//{{{SVG_NS}}}circle")) == 1
        assert len(latency_chart.findall(f".//{{{SVG_NS}}}polyline")) == 1
