"""The OpenMetrics 1.0.0 text exposition of RED metrics, with exemplars, and the Accept negotiation that picks it.

Differences from the Prometheus text format (0.0.4) that matter here: metadata comes as TYPE, UNIT, HELP; the
duration histogram declares its unit; ``le`` values are canonical numbers (Go's shortest ``%g``, ``.0`` added to a
bare integer, so ``1.0`` and ``1e+06``); a bucket may carry one exemplar, ``# {trace_id="..."} value timestamp``
with the timestamp in Unix seconds; and the exposition ends with ``# EOF``. No ``_created`` samples: with several
workers and retired totals there is no single creation time to report, and the spec only recommends them.
"""

from __future__ import annotations

from math import inf
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from overdrive.observability._snapshot import Snapshot

__all__ = ["CONTENT_TYPE", "EXEMPLAR_LABELS_MAX", "accepts_openmetrics", "canonical_number", "escape", "render"]

CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
EXEMPLAR_LABELS_MAX: Final = 128  # characters of an exemplar's label names and values together (the spec's limit)
_MEDIA_TYPE: Final = "application/openmetrics-text"
_VERSIONS: Final = frozenset({None, "1.0.0", "0.0.1"})  # 0.0.1 is what older Prometheus servers ask for; same text
_PLAIN: Final = frozenset({"text/plain", "text/*", "*/*"})
_EXPONENT_FROM: Final = 1e6  # where Go's %g turns to exponent notation (Python's repr waits until 1e16)


def accepts_openmetrics(accept: str) -> bool:
    """Whether an Accept header asks for OpenMetrics text at least as much as for anything we would serve instead.

    Prometheus sends ``application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1``.
    """
    openmetrics = plain = 0.0
    for media_range in accept.split(","):
        media_type, *parameters = media_range.split(";")
        quality, version = 1.0, None
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                quality = _quality(value)
            elif name == "version":
                version = value
        media_type = media_type.strip().lower()
        if media_type == _MEDIA_TYPE and version in _VERSIONS:
            openmetrics = max(openmetrics, quality)
        elif media_type in _PLAIN:
            plain = max(plain, quality)
    return openmetrics > 0 and openmetrics >= plain


def _quality(value: str) -> float:
    try:
        quality = float(value)
    except ValueError:
        return 0.0
    return quality if 0.0 <= quality <= 1.0 else 0.0


def canonical_number(value: float) -> str:
    """`value` as an OpenMetrics ``le`` label: Go's shortest ``%g``, with ``.0`` added when it has neither point nor e.

    Python's `repr` already agrees except from 1e6 up to 1e16. Only for positive values, which histogram bounds are.
    """
    if value == inf:
        return "+Inf"
    text = repr(value)
    if value < _EXPONENT_FROM or "e" in text:
        return text
    whole, _, fraction = text.partition(".")
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{mantissa}e+{len(whole) - 1:02d}"


def escape(value: str) -> str:
    """A label value (or HELP text) escaped for the text formats: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(snapshot: Snapshot, prefix: str) -> str:
    """The snapshot as an OpenMetrics 1.0.0 text exposition, exemplars included, ending in ``# EOF``."""
    gauge = f"{prefix}_requests_in_flight"
    lines = [f"# TYPE {gauge} gauge", f"# HELP {gauge} HTTP requests being served."]
    lines += [f'{gauge}{{method="{escape(m)}"}} {n}' for m, n in sorted(snapshot.in_flight.items())]
    name = f"{prefix}_request_duration_seconds"
    lines += [
        f"# TYPE {name} histogram",
        f"# UNIT {name} seconds",
        f"# HELP {name} Time from request start to the end of the application's response.",
    ]
    bounds = [canonical_number(bound) for bound in snapshot.buckets] + ["+Inf"]
    for (method, route, status), totals in sorted(snapshot.series.items()):
        labels = f'method="{escape(method)}",route="{escape(route)}",status="{escape(status)}"'
        exemplars = totals.exemplars or [None] * len(bounds)
        cumulative = 0
        for le, count, exemplar in zip(bounds, totals.counts, exemplars, strict=True):
            cumulative += count
            line = f'{name}_bucket{{{labels},le="{le}"}} {cumulative}'
            if exemplar is not None:
                trace_id, value, timestamp = exemplar
                line += f' # {{trace_id="{escape(trace_id)}"}} {value!r} {timestamp!r}'
            lines.append(line)
        lines.append(f"{name}_count{{{labels}}} {cumulative}")
        lines.append(f"{name}_sum{{{labels}}} {totals.total!r}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
