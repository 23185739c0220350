"""RED metrics for HTTP: request counts, a duration histogram and in-flight requests, kept in process.

Labels are bounded by construction: the method folds into a known set (else ``OTHER``), the route is the
framework's route *template* (``/products/{product_id}``, never the raw path; anything unmatched is one label,
``(unmatched)``, and routes past `max_routes` fold into ``(other)``), and the status into its class (``2xx``).
Recording is a dict lookup on a label tuple, a `bisect` into the bucket bounds and three increments: no lock
(everything runs on the event loop's thread) and no allocation once a series exists.

`render` writes the Prometheus text format (version 0.0.4); the bucket bounds include 0.5 s, the latency
threshold of the alert rules.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["DEFAULT_BUCKETS", "OTHER_ROUTE", "UNMATCHED_ROUTE", "RequestMetrics"]

DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE: Final = "(unmatched)"
OTHER_ROUTE: Final = "(other)"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CLASSES: Final = {n: f"{n}xx" for n in range(1, 6)}


class _Series:
    """One label set's histogram: per-bucket counts (the last is +Inf), the sum and the count."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)
        self.count = 0
        self.total = 0.0


class RequestMetrics:
    """The registry the metrics middleware records into; render it for Prometheus or read it in process."""

    def __init__(self, *, buckets: tuple[float, ...] = DEFAULT_BUCKETS, max_routes: int = 500) -> None:
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
            msg = f"Histogram buckets must be positive, distinct and increasing, not {buckets!r}."
            raise ValueError(msg)
        self.buckets = buckets
        self.max_routes = max_routes
        self.series: dict[tuple[str, str, str], _Series] = {}
        self.in_flight: dict[str, int] = {}
        self._routes: set[str] = set()

    def label_method(self, method: str) -> str:
        """The method as a bounded label value."""
        return method if method in _METHODS else "OTHER"

    def started(self, method: str) -> None:
        """A request came in (in-flight is tracked per method: the route is only known after routing)."""
        self.in_flight[method] = self.in_flight.get(method, 0) + 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request ended: count it under its route template and status class, and time it."""
        self.in_flight[method] -= 1
        key = (method, route, _CLASSES.get(status // 100, "5xx"))
        series = self.series.get(key)
        if series is None:
            series = self._new_series(key)
        series.buckets[bisect_left(self.buckets, seconds)] += 1
        series.count += 1
        series.total += seconds

    def _new_series(self, key: tuple[str, str, str]) -> _Series:
        method, route, status = key
        if route not in self._routes:
            if len(self._routes) >= self.max_routes and route != UNMATCHED_ROUTE:
                other = (method, OTHER_ROUTE, status)
                existing = self.series.get(other)
                if existing is not None:
                    return existing  # not stored under `key`: the table stays bounded
                key = other
            else:
                self._routes.add(route)
        series = _Series(len(self.buckets))
        self.series[key] = series
        return series

    def render(self, prefix: str = "http_server") -> str:
        """The registry in the Prometheus text exposition format."""
        lines = [
            f"# HELP {prefix}_requests_in_flight HTTP requests being served.",
            f"# TYPE {prefix}_requests_in_flight gauge",
        ]
        lines += [f'{prefix}_requests_in_flight{{method="{m}"}} {n}' for m, n in sorted(self.in_flight.items())]
        name = f"{prefix}_request_duration_seconds"
        lines += [
            f"# HELP {name} Time from request start to the end of the application's response.",
            f"# TYPE {name} histogram",
        ]
        seen: set[int] = set()
        for (method, route, status), series in sorted(self.series.items()):
            if id(series) in seen:
                continue  # a folded route shares the "(other)" series
            seen.add(id(series))
            labels = f'method="{method}",route="{_escape(route)}",status="{status}"'
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), series.buckets, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f"{name}_sum{{{labels}}} {series.total!r}")
            lines.append(f"{name}_count{{{labels}}} {series.count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
