"""The outcome of a load run, and its JSON form (schema ``overdrive.load/1``, documented in BENCHMARKS.md).

Latencies are milliseconds. In the open model `latency` is measured from each request's intended send time
(coordinated-omission corrected) and `service` from the actual send; in the closed model they are the same thing
and `service` is None. Each latency block carries the histogram it came from (sparse buckets), so results can be
merged or re-analysed exactly later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from overdrive.loadtest.histogram import Histogram

__all__ = ["SCHEMA", "LatencyStats", "LoadResult", "NameResult", "TimelinePoint"]

SCHEMA = "overdrive.load/1"
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Percentiles, mean, min and max of a latency histogram, in milliseconds."""

    count: int
    mean: float
    min: float
    max: float
    percentiles: dict[str, float]
    histogram: dict[str, Any]

    @classmethod
    def of(cls, histogram: Histogram) -> LatencyStats:
        """Summarise a histogram of microsecond values."""
        values = histogram.percentiles(PERCENTILES.values()) if histogram.count else {}
        return cls(
            count=histogram.count,
            mean=histogram.mean / 1000 if histogram.count else 0.0,
            min=histogram.min / 1000 if histogram.count else 0.0,
            max=histogram.max / 1000 if histogram.count else 0.0,
            percentiles={key: values.get(p, 0) / 1000 for key, p in PERCENTILES.items()},
            histogram=histogram.to_dict(),
        )

    def to_histogram(self) -> Histogram:
        """The histogram these figures came from."""
        return Histogram.from_dict(self.histogram)


@dataclass(frozen=True, kw_only=True)
class TimelinePoint:
    """One second of the run (for one request name, or all)."""

    second: int
    requests: int
    errors: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, kw_only=True)
class NameResult:
    """Figures for one request name."""

    name: str
    requests: int
    errors: int
    statuses: dict[str, int]
    latency: LatencyStats
    service: LatencyStats | None
    timeline: list[TimelinePoint]


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """A whole run."""

    target: str
    model: str
    options: dict[str, Any]
    started_at: str
    elapsed_s: float
    procs: int
    sent: int
    completed: int
    http_errors: int
    transport_errors: dict[str, int]
    unanswered: int
    late: int
    dropped: int
    target_rate: float | None
    latency: LatencyStats
    service: LatencyStats | None
    names: list[NameResult]
    timeline: list[TimelinePoint]
    cpu_utilization: list[float]
    """Per worker process: CPU seconds over wall seconds across the run (1.0 = one full core)."""
    warnings: list[str] = field(default_factory=list)
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    corrected: LatencyStats | None = None
    """Closed model only: `latency` corrected after the fact for coordinated omission (see
    `Histogram.corrected`), with one connection's mean interval between requests as the expected interval. An
    estimate of what an open-model run at the same rate would report; the open model measures it directly."""
    schema: str = SCHEMA

    @property
    def errors(self) -> int:
        """Failed requests: HTTP status >= 400, transport failures, and requests left unanswered at the end."""
        return self.http_errors + sum(self.transport_errors.values()) + self.unanswered

    @property
    def attempted(self) -> int:
        """Requests that were answered or failed."""
        return self.completed + sum(self.transport_errors.values()) + self.unanswered

    @property
    def rate(self) -> float:
        """Answered requests per second of the run."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat metrics for thresholds: latency in ms, error/late/dropped shares as fractions, rps."""
        attempted = max(1, self.attempted)
        flat: dict[str, float] = dict(self.latency.percentiles.items())
        flat.update(
            mean=self.latency.mean,
            max=self.latency.max,
            min=self.latency.min,
            rps=self.rate,
            errors=self.errors / attempted,
            late=self.late / max(1, self.sent),
            dropped=float(self.dropped),
            requests=float(self.completed),
        )
        if self.corrected is not None:
            flat.update({f"corrected_{key}": value for key, value in self.corrected.percentiles.items()})
        return flat

    def name_metrics(self) -> dict[str, dict[str, float]]:
        """The same flat metrics for each request name."""
        out = {}
        for item in self.names:
            flat: dict[str, float] = dict(item.latency.percentiles)
            flat.update(
                mean=item.latency.mean,
                max=item.latency.max,
                min=item.latency.min,
                rps=item.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0,
                errors=item.errors / max(1, item.requests),
                requests=float(item.requests),
            )
            out[item.name] = flat
        return out

    def to_json(self) -> bytes:
        """Serialise (schema ``overdrive.load/1``)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, data: bytes | str) -> LoadResult:
        """Rebuild a result written by `to_json`."""
        raw: dict[str, Any] = orjson.loads(data)
        if raw.get("schema") != SCHEMA:
            msg = f"Not an Overdrive load result (schema {raw.get('schema')!r}, expected {SCHEMA!r})."
            raise ValueError(msg)
        raw["latency"] = LatencyStats(**raw["latency"])
        raw["service"] = LatencyStats(**raw["service"]) if raw["service"] else None
        raw["corrected"] = LatencyStats(**raw["corrected"]) if raw.get("corrected") else None
        raw["timeline"] = [TimelinePoint(**p) for p in raw["timeline"]]
        raw["names"] = [
            NameResult(
                **{
                    **n,
                    "latency": LatencyStats(**n["latency"]),
                    "service": LatencyStats(**n["service"]) if n["service"] else None,
                    "timeline": [TimelinePoint(**p) for p in n["timeline"]],
                }
            )
            for n in raw["names"]
        ]
        return cls(**raw)
