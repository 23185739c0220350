"""What a demo run measured: plain data shared by the runner, the driver and the reports.

Latencies are in milliseconds, throughput in requests per second. Everything round-trips through JSON
(`to_json` / `from_json`) so the driver can run in its own process and reports can be rebuilt later.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DemoResult",
    "EndpointResult",
    "LatencySummary",
    "ProfileResult",
    "profile_from_dict",
    "summarize",
]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, kw_only=True)
class LatencySummary:
    """Percentiles of a set of latencies (ms), plus mean and max."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float


def summarize(latencies_ms: list[float]) -> LatencySummary:
    """Summarise latencies with exact nearest-rank percentiles.

    Args:
        latencies_ms: Latencies in milliseconds, in any order.

    Returns:
        The count, mean, max and percentiles; all zero for an empty list.

    """
    if not latencies_ms:
        return LatencySummary(count=0, mean=0.0, p50=0.0, p90=0.0, p95=0.0, p99=0.0, p999=0.0, max=0.0)
    ordered = sorted(latencies_ms)
    p50, p90, p95, p99, p999 = (_nearest_rank(ordered, p) for p in PERCENTILES)
    return LatencySummary(
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        p999=p999,
        max=ordered[-1],
    )


def _nearest_rank(ordered: list[float], p: float) -> float:
    """Return the smallest value with at least `p` percent of `ordered` at or below it."""
    n = len(ordered)
    # Rounding first keeps float noise (0.29 * 100 == 28.999999999999996) from shifting the rank.
    index = math.ceil(round(p / 100 * n, 9)) - 1
    return ordered[min(n - 1, max(0, index))]


@dataclass(frozen=True, kw_only=True)
class EndpointResult:
    """One request name's figures within a profile's run."""

    name: str
    requests: int
    errors: int
    throughput: float
    latency: LatencySummary
    queries_per_request: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        """Share of requests that failed (transport error or an unexpected status)."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, kw_only=True)
class ProfileResult:
    """A profile's whole run: totals, per-endpoint figures and the latency-over-time series."""

    profile: str
    duration_s: float
    requests: int
    errors: int
    throughput: float
    latency: LatencySummary
    queries_per_request: float | None
    endpoints: list[EndpointResult]
    timeline: list[tuple[float, float, float]] = field(default_factory=list)
    """Per second of the run: (second, requests completed, p95 latency in ms)."""

    @property
    def error_rate(self) -> float:
        """Share of all requests that failed."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, kw_only=True)
class DemoResult:
    """A whole demo: how it ran, and one result per profile in the order they ran."""

    started_at: str
    server: str
    driver: str
    database: str
    scale: float
    concurrency: int
    duration_s: float
    cpus: int
    python: str
    profiles: list[ProfileResult]

    def ratios(self) -> dict[str, dict[str, float | None]]:
        """Each profile's figures divided by the first profile's (normally naive); None where undefined."""
        base = self.profiles[0]
        return {p.profile: {name: _ratio(value(p), value(base)) for name, value in _RATIOS} for p in self.profiles}

    def to_json(self) -> bytes:
        """Serialise to JSON bytes, with `ratios` (see `ratios`) and the `baseline` profile they divide by."""
        extra = {"baseline": self.profiles[0].profile, "ratios": self.ratios()} if self.profiles else {}
        return orjson.dumps({**asdict(self), **extra}, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes | str) -> DemoResult:
        """Rebuild a result written by `to_json` (the derived ratios are recomputed, not read)."""
        raw: dict[str, Any] = orjson.loads(data)
        raw.pop("baseline", None)
        raw.pop("ratios", None)
        raw["profiles"] = [profile_from_dict(p) for p in raw["profiles"]]
        return cls(**raw)


_RATIOS: tuple[tuple[str, Callable[[ProfileResult], float | None]], ...] = (
    ("throughput", lambda p: p.throughput),
    ("p50", lambda p: p.latency.p50),
    ("p95", lambda p: p.latency.p95),
    ("p99", lambda p: p.latency.p99),
    ("queries_per_request", lambda p: p.queries_per_request),
)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


def profile_from_dict(raw: dict[str, Any]) -> ProfileResult:
    """Rebuild a `ProfileResult` from its `dataclasses.asdict` form (as the driver process writes it)."""
    raw = dict(raw)
    raw["latency"] = LatencySummary(**raw["latency"])
    raw["endpoints"] = [EndpointResult(**{**e, "latency": LatencySummary(**e["latency"])}) for e in raw["endpoints"]]
    raw["timeline"] = [tuple(point) for point in raw["timeline"]]
    return ProfileResult(**raw)
