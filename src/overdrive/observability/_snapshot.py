"""A point-in-time copy of RED metrics that can be summed, written to a file and read back.

The bytes are JSON (orjson, exact float round trip)::

    {"buckets": [0.005, ...], "in_flight": {"GET": 1},
     "series": [["GET", "/items/{id}", "2xx", [3, 0, ..., 0], 0.0123], ...]}

Per-bucket counts are not cumulative; the last one is +Inf and a series' count is their sum, so a snapshot taken
while the event loop records is never internally inconsistent about counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import add
from typing import Any

import orjson

SeriesKey = tuple[str, str, str]


@dataclass(slots=True)
class SeriesTotals:
    """One label set's per-bucket counts (the last is +Inf) and sum of durations."""

    counts: list[int]
    total: float = 0.0

    @property
    def count(self) -> int:
        """Observations in all buckets."""
        return sum(self.counts)


@dataclass(slots=True)
class Snapshot:
    """Histograms by (method, route, status class) and in-flight requests by method, for one bucket layout."""

    buckets: tuple[float, ...]
    in_flight: dict[str, int] = field(default_factory=dict)
    series: dict[SeriesKey, SeriesTotals] = field(default_factory=dict)

    def add(self, other: Snapshot, *, gauges: bool) -> None:
        """Sum `other`'s counters into this one, and its in-flight gauges too if `gauges` (else only their labels)."""
        for method, value in other.in_flight.items():
            self.in_flight[method] = self.in_flight.get(method, 0) + (value if gauges else 0)
        for key, theirs in other.series.items():
            ours = self.series.get(key)
            if ours is None:
                self.series[key] = SeriesTotals(list(theirs.counts), theirs.total)
                continue
            ours.counts = list(map(add, ours.counts, theirs.counts))  # same layout: checked when read
            ours.total += theirs.total

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data."""
        return {
            "buckets": self.buckets,
            "in_flight": self.in_flight,
            "series": [[*key, totals.counts, totals.total] for key, totals in self.series.items()],
        }

    def encode(self) -> bytes:
        """The snapshot as JSON bytes."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        """Rebuild a snapshot from `to_dict` data; raises ValueError, KeyError or TypeError when malformed."""
        buckets = tuple(float(bound) for bound in data["buckets"])
        size = len(buckets) + 1
        series = {}
        for method, route, status, counts, total in data["series"]:
            if len(counts) != size:
                msg = f"A series has {len(counts)} bucket counts where the layout has {size}."
                raise ValueError(msg)
            series[str(method), str(route), str(status)] = SeriesTotals(list(map(int, counts)), float(total))
        in_flight = {str(method): int(value) for method, value in data["in_flight"].items()}
        return cls(buckets, in_flight, series)
