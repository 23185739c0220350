"""Inline SVG charts for Overdrive's HTML reports: grouped bars and lines, drawn as plain strings.

Each chart is one self-contained `<svg>` element (no scripts, fonts or external references) whose text is
escaped here, so callers pass plain strings. Series keep their order, and so their colour, across charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["PALETTE", "BarSeries", "LineSeries", "bar_chart", "format_number", "line_chart"]

PALETTE = ("#c8553d", "#2a7f9e", "#e0a030", "#5b8c5a", "#6d597a", "#8d96a3")

_WIDTH = 640
_PLOT_HEIGHT = 200
_LEFT, _RIGHT, _TOP = 64, 16, 58
_MAX_BAR = 64
_FEW_DECADES = 2
_FLOOR_MARGIN = 2
_LABEL_CHARS = 24  # longer group labels are cut short
_CHAR_WIDTH = 6.2  # rough width of an 11px sans-serif glyph, to decide when labels need tilting
_SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True, kw_only=True)
class BarSeries:
    """One coloured set of bars: a value per group, `None` where there is nothing to draw."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True, kw_only=True)
class LineSeries:
    """One coloured line through (x, y) points, in x order."""

    name: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class _Scale:
    """Maps values onto the unit interval, linearly from zero or on a log10 axis."""

    lo: float
    hi: float
    log: bool

    @classmethod
    def fit(cls, values: Iterable[float], *, log: bool = False) -> _Scale:
        finite = [v for v in values if math.isfinite(v)]
        positive = [v for v in finite if v > 0]
        if log and positive:
            lo = 10.0 ** math.floor(math.log10(min(positive)))
            hi = 10.0 ** math.ceil(math.log10(max(positive)))
            if min(positive) < _FLOOR_MARGIN * lo:
                lo /= 10  # a bar sitting right on the floor of a log axis would look like no bar at all
            return cls(lo, max(hi, lo * 10), log=True)
        top = max(finite, default=0.0)
        step = _nice_step(top)
        return cls(0.0, max(step, math.ceil(top / step) * step), log=False)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.lo)), round(math.log10(self.hi))
            # A short log axis gets 2 and 5 marks too, or it would show only two or three labels.
            steps = (1, 2, 5) if last - first <= _FEW_DECADES else (1,)
            ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps]
            return [t for t in ticks if t <= self.hi]
        step = _nice_step(self.hi)
        return [i * step for i in range(round(self.hi / step) + 1)]

    def fraction(self, value: float) -> float:
        if self.log:
            if value <= 0:
                return 0.0
            span = math.log10(self.hi) - math.log10(self.lo)
            share = (math.log10(value) - math.log10(self.lo)) / span
        else:
            share = value / self.hi
        return min(1.0, max(0.0, share))


@dataclass(frozen=True)
class _Frame:
    """The plotting area inside the margins, in SVG user units."""

    left: float
    top: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def y(self, scale: _Scale, value: float) -> float:
        return self.bottom - scale.fraction(value) * self.height


def format_number(value: float, digits: int = 3) -> str:
    """Format a number compactly for axes and labels.

    Args:
        value: Any finite number.
        digits: Significant digits to keep; whole digits are never dropped.

    Returns:
        The number with a k/M/G suffix from a thousand up and no trailing zeros (`2.67k`, `0.25`, `364`).

    """
    scaled, suffix = value, ""
    for bound, name in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            scaled, suffix = value / bound, name
            break
    if scaled == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(scaled))))
    text = f"{scaled:.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + suffix


def bar_chart(
    *,
    title: str,
    groups: Sequence[str],
    series: Sequence[BarSeries],
    unit: str,
    log: bool = False,
    show_values: bool = False,
) -> str:
    """Draw a grouped bar chart: one cluster per group, one bar per series inside it.

    Args:
        title: Heading drawn above the chart.
        groups: Cluster labels along the x axis.
        series: Bars per cluster, coloured in order from `PALETTE`.
        unit: Label of the y axis.
        log: Use a log10 y axis (non-positive values then draw no bar).
        show_values: Print each bar's value above it.

    Returns:
        An `<svg>` element as a string.

    """
    band = (_WIDTH - _LEFT - _RIGHT) / max(1, len(groups))
    tilt = max((len(g) for g in groups), default=0) * _CHAR_WIDTH > band * 0.95
    bottom_margin = 24 + (min(_LABEL_CHARS, max(len(g) for g in groups)) * _CHAR_WIDTH * 0.6 if tilt else 0)
    frame = _Frame(_LEFT, _TOP, _WIDTH - _LEFT - _RIGHT, _PLOT_HEIGHT)
    scale = _Scale.fit((v for s in series for v in s.values if v is not None), log=log)
    bar = min(_MAX_BAR, band * 0.8 / max(1, len(series)))
    parts = [_open(title, frame.bottom + bottom_margin), _legend([s.name for s in series])]
    parts.append(_y_axis(frame, scale, unit))
    for g, group in enumerate(groups):
        start = frame.left + g * band + (band - bar * len(series)) / 2
        for s, item in enumerate(series):
            value = item.values[g] if g < len(item.values) else None
            if value is not None:
                tooltip = f"{item.name} · {group}: {format_number(value)} {unit}"
                parts.append(_bar(frame, scale, span=(start + s * bar, bar), value=value, index=s, tooltip=tooltip))
                if show_values:
                    parts.append(_value_label(frame, scale, start + (s + 0.5) * bar, value))
        parts.append(_group_label(frame.left + (g + 0.5) * band, frame.bottom, group, tilt=tilt))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    *,
    title: str,
    series: Sequence[LineSeries],
    x_label: str,
    y_label: str,
    log: bool = False,
) -> str:
    """Draw a line chart with one line per series on shared axes.

    Args:
        title: Heading drawn above the chart.
        series: Lines, coloured in order from `PALETTE`.
        x_label: Label of the x axis.
        y_label: Label of the y axis.
        log: Use a log10 y axis (non-positive points then break the line).

    Returns:
        An `<svg>` element as a string.

    """
    frame = _Frame(_LEFT, _TOP, _WIDTH - _LEFT - _RIGHT, _PLOT_HEIGHT)
    x_scale = _Scale.fit(x for s in series for x, _ in s.points)
    y_scale = _Scale.fit((y for s in series for _, y in s.points), log=log)
    parts = [_open(title, frame.bottom + 44), _legend([s.name for s in series])]
    parts.append(_y_axis(frame, y_scale, y_label))
    for tick in x_scale.ticks():
        x = frame.left + x_scale.fraction(tick) * frame.width
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 16:.1f}" text-anchor="middle">')
        parts.append(f"{format_number(tick)}</text>")
    parts.append(f'<text x="{frame.left + frame.width / 2:.1f}" y="{frame.bottom + 36:.1f}" ')
    parts.append(f'text-anchor="middle" fill="#555">{escape(x_label)}</text>')
    for index, item in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        for run in _runs(item.points, positive=log):
            coords = [(frame.left + x_scale.fraction(x) * frame.width, frame.y(y_scale, y)) for x, y in run]
            parts.append(_polyline(coords, color))
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(top: float, target: int = 5) -> float:
    """Return a 1-2-5 step that splits [0, top] into about `target` intervals."""
    if top <= 0:
        return 1.0
    raw = top / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _open(title: str, height: float) -> str:
    label = escape(title)
    return (
        f'<svg xmlns="{_SVG_NS}" viewBox="0 0 {_WIDTH} {height:.0f}" role="img" aria-label="{label}" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="#333">'
        f"<title>{label}</title>"
        f'<text x="{_LEFT}" y="20" font-size="14" font-weight="600">{label}</text>'
    )


def _legend(names: Sequence[str]) -> str:
    parts, x = [], float(_LEFT)
    for index, name in enumerate(names):
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="32" width="12" height="12" rx="2" fill="{color}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="42">{escape(name)}</text>')
        x += 16 + len(name) * _CHAR_WIDTH + 18
    return "".join(parts)


def _y_axis(frame: _Frame, scale: _Scale, label: str) -> str:
    parts = []
    for tick in scale.ticks():
        y = frame.y(scale, tick)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.left + frame.width}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e3e3e3"/><text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{format_number(tick)}</text>"
        )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.left + frame.width}" y1="{frame.bottom}" '
        f'y2="{frame.bottom}" stroke="#999"/>'
    )
    middle = frame.top + frame.height / 2
    suffix = " (log scale)" if scale.log else ""
    parts.append(
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" fill="#555" '
        f'transform="rotate(-90 14 {middle:.1f})">{escape(label + suffix)}</text>'
    )
    return "".join(parts)


def _bar(frame: _Frame, scale: _Scale, *, span: tuple[float, float], value: float, index: int, tooltip: str) -> str:
    (x, width), top = span, frame.y(scale, value)
    return (
        f'<rect x="{x:.1f}" y="{top:.1f}" width="{max(1.0, width - 2):.1f}" '
        f'height="{frame.bottom - top:.1f}" fill="{PALETTE[index % len(PALETTE)]}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )


def _value_label(frame: _Frame, scale: _Scale, x: float, value: float) -> str:
    y = frame.y(scale, value) - 4
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{format_number(value)}</text>'


def _group_label(x: float, y: float, text: str, *, tilt: bool) -> str:
    shown = escape(text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…")
    if not tilt:
        return f'<text x="{x:.1f}" y="{y + 16:.1f}" text-anchor="middle">{shown}</text>'
    return (
        f'<text x="{x:.1f}" y="{y + 12:.1f}" text-anchor="end" '
        f'transform="rotate(-35 {x:.1f} {y + 12:.1f})">{shown}</text>'
    )


def _runs(points: Sequence[tuple[float, float]], *, positive: bool) -> list[list[tuple[float, float]]]:
    """Split a line where a point cannot be drawn (non-positive on a log axis)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if positive and y <= 0:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _polyline(coords: Sequence[tuple[float, float]], color: str) -> str:
    if len(coords) == 1:
        (x, y), *_ = coords
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>'
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
