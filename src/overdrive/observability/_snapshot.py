"""A point-in-time copy of RED metrics that can be summed, written to a file and read back.

The bytes are JSON (orjson, exact float round trip)::

    {"buckets": [0.005, ...], "in_flight": {"GET": 1},
     "series": [["GET", "/items/{id}", "2xx", [3, 0, ..., 0], 0.0123], ...]}

Per-bucket counts are not cumulative; the last one is +Inf and a series' count is their sum, so a snapshot taken
while the event loop records is never internally inconsistent about counts. A series with exemplars has a sixth
element, one entry per bucket: ``null`` or ``[trace_id, value, unix_seconds]``; without exemplars the bytes are as
they were before exemplars existed, so old and new workers can share a directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import add
from typing import Any, NamedTuple

import orjson

SeriesKey = tuple[str, str, str]


class Exemplar(NamedTuple):
    """One observation that stands for its bucket: the trace it belongs to, its value and when it was seen."""

    trace_id: str
    value: float
    timestamp: float


@dataclass(slots=True)
class SeriesTotals:
    """One label set's per-bucket counts (the last is +Inf), sum of durations and, if any, each bucket's exemplar."""

    counts: list[int]
    total: float = 0.0
    exemplars: list[Exemplar | None] | None = None

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
                exemplars = None if theirs.exemplars is None else list(theirs.exemplars)
                self.series[key] = SeriesTotals(list(theirs.counts), theirs.total, exemplars)
                continue
            ours.counts = list(map(add, ours.counts, theirs.counts))  # same layout: checked when read
            ours.total += theirs.total
            if theirs.exemplars is not None:
                ours.exemplars = _latest(ours.exemplars, theirs.exemplars)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data."""
        return {
            "buckets": self.buckets,
            "in_flight": self.in_flight,
            "series": [_row(key, totals) for key, totals in self.series.items()],
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
        for method, route, status, counts, total, *rest in data["series"]:
            if len(counts) != size or len(rest) > 1 or (rest and len(rest[0]) != size):
                msg = f"A series does not match the layout of {size} buckets: {counts!r}, {rest!r}."
                raise ValueError(msg)
            exemplars = [None if e is None else _exemplar(*e) for e in rest[0]] if rest else None
            key = str(method), str(route), str(status)
            series[key] = SeriesTotals(list(map(int, counts)), float(total), exemplars)
        in_flight = {str(method): int(value) for method, value in data["in_flight"].items()}
        return cls(buckets, in_flight, series)


def _row(key: SeriesKey, totals: SeriesTotals) -> list[Any]:
    row: list[Any] = [*key, totals.counts, totals.total]
    if totals.exemplars is not None:
        row.append([None if e is None else list(e) for e in totals.exemplars])  # orjson writes no NamedTuple
    return row


def _exemplar(trace_id: Any, value: Any, timestamp: Any) -> Exemplar:
    if not isinstance(trace_id, str):
        msg = f"An exemplar's trace id must be a string, not {trace_id!r}."
        raise TypeError(msg)
    return Exemplar(trace_id, float(value), float(timestamp))


def _latest(ours: list[Exemplar | None] | None, theirs: list[Exemplar | None]) -> list[Exemplar | None]:
    """Per bucket, the more recent exemplar of the two (ours on a tie)."""
    if ours is None:
        return list(theirs)
    pairs = zip(ours, theirs, strict=True)
    return [b if a is None or (b is not None and b.timestamp > a.timestamp) else a for a, b in pairs]
