"""The report's SVG helpers: number labels and empty charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from overdrive._svg import BarSeries, LineSeries, bar_chart, format_number, line_chart


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.25, "0.25"),
        (12.345, "12.3"),
        (363.6, "364"),
        (2667, "2.67k"),
        (2500, "2.5k"),
        (1.2e6, "1.2M"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    """Labels keep three significant digits, drop trailing zeros and use k/M suffixes."""
    assert format_number(value) == text


def test_empty_charts_are_well_formed() -> None:
    """Charts with nothing to draw still produce valid SVG."""
    for chart in (
        bar_chart(title="t", groups=[], series=[], unit="ms", log=True),
        line_chart(title="t", series=[LineSeries(name="a", points=[])], x_label="s", y_label="ms"),
    ):
        assert ET.fromstring(chart).tag.endswith("svg")  # noqa: S314 - our own output


def test_missing_values_draw_no_bar() -> None:
    """A None value leaves a gap instead of a zero-height bar."""
    chart = bar_chart(title="t", groups=["a", "b"], series=[BarSeries(name="x", values=[1.0, None])], unit="q")
    assert chart.count("<rect x=") == 1 + 1  # the legend swatch and one bar


def test_text_is_escaped() -> None:
    """Titles, names and labels are escaped."""
    chart = bar_chart(title="<b>", groups=["a&b"], series=[BarSeries(name='"x"', values=[1.0])], unit="u")
    assert "<b>" not in chart
    assert "a&amp;b" in chart
    assert "&quot;x&quot;" in chart
