"""Per-fingerprint query statistics in bounded memory: count, time, percentiles, rows, the slowest example.

Each fingerprint keeps a small log-scale histogram (4 buckets per doubling from 1 µs to about 1.2 hours, so a
percentile is within about 9% of the true value) instead of every sample. The store holds at most
`max_fingerprints`; when full, the least-used tenth is evicted in one pass, so eviction costs nothing per query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from overdrive.db.fingerprint import Fingerprint

__all__ = ["LatencyHistogram", "QueryStats", "QueryStore", "StatsSnapshot"]

DEFAULT_MAX_FINGERPRINTS = 5000
BUCKETS_PER_DOUBLING = 4
_BUCKET_COUNT = 33 * BUCKETS_PER_DOUBLING  # 2**32 µs is 71 minutes
_MAX_EXAMPLE_CHARS = 2000
_SCALE = BUCKETS_PER_DOUBLING / math.log(2)


def _bucket(seconds: float) -> int:
    micros = seconds * 1e6
    if micros <= 1.0:
        return 0
    index = int(math.log(micros) * _SCALE) + 1
    return index if index < _BUCKET_COUNT else _BUCKET_COUNT - 1


def _bucket_mid(index: int) -> float:
    """The geometric middle of bucket `index`, in seconds."""
    if index == 0:
        return 0.5e-6
    low = 2 ** ((index - 1) / BUCKETS_PER_DOUBLING)
    high = 2 ** (index / BUCKETS_PER_DOUBLING)
    return math.sqrt(low * high) * 1e-6


def _clip_parameters(parameters: Any) -> Any:
    """The example parameters, made JSON-friendly and bounded in size."""
    if isinstance(parameters, dict):
        return {str(k): _clip_value(v) for k, v in list(parameters.items())[:100]}
    if isinstance(parameters, list | tuple):
        if parameters and isinstance(parameters[0], list | tuple | dict):  # executemany: keep the first row
            return _clip_parameters(parameters[0])
        return [_clip_value(v) for v in parameters[:100]]
    return None if parameters is None else _clip_value(parameters)


def _clip_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[:_MAX_EXAMPLE_CHARS] + "..."


class LatencyHistogram:
    """Durations in log-scale buckets (4 per doubling, 1 µs to about 71 minutes): count, max and percentiles."""

    __slots__ = ("buckets", "count", "max_s")

    def __init__(self) -> None:
        self.buckets = [0] * _BUCKET_COUNT
        self.count = 0
        self.max_s = 0.0

    def record(self, seconds: float) -> None:
        """Add one duration."""
        self.count += 1
        self.buckets[_bucket(seconds)] += 1
        self.max_s = max(self.max_s, seconds)

    def percentile(self, fraction: float) -> float:
        """The duration below which `fraction` (0..1) of the recorded ones fell, in seconds (bucket resolution)."""
        if not 0.0 <= fraction <= 1.0:
            msg = f"A percentile fraction lies in [0, 1], not {fraction!r}."
            raise ValueError(msg)
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        if rank >= self.count:
            return self.max_s
        seen = 0
        for index, hits in enumerate(self.buckets):
            seen += hits
            if seen >= rank:
                return min(_bucket_mid(index), self.max_s)
        return self.max_s  # pragma: no cover -- the buckets always sum to count


@dataclass(slots=True)
class QueryStats:
    """What one fingerprint has cost so far.

    Attributes:
        fingerprint: the statement's identity.
        count: executions recorded.
        total_s: their summed duration, in seconds.
        max_s: the slowest one.
        rows: rows reported by the driver (``rowcount``), summed over the executions that reported one.
        example_statement: the SQL of the slowest execution, as sent to the driver.
        example_parameters: its parameters (bounded in size).
        call_site: ``file:line`` of the application code that first ran it, when known.
        plan: an EXPLAIN plan captured for a slow execution, when plan capture is on.

    """

    fingerprint: Fingerprint
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    rows: int = 0
    example_statement: str = ""
    example_parameters: Any = None
    call_site: str | None = None
    plan: Any = None
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)

    def record(self, seconds: float, statement: str, parameters: Any, rowcount: int) -> None:
        """Add one execution."""
        self.count += 1
        self.total_s += seconds
        self.latency.record(seconds)
        if rowcount > 0:
            self.rows += rowcount
        if seconds >= self.max_s:
            self.max_s = seconds
            self.example_statement = statement
            self.example_parameters = parameters

    @property
    def mean_s(self) -> float:
        """The mean duration, in seconds (0 before the first execution)."""
        return self.total_s / self.count if self.count else 0.0

    def percentile(self, fraction: float) -> float:
        """The duration below which `fraction` (0..1) of the executions fell, in seconds (bucket resolution)."""
        return self.latency.percentile(fraction)

    def snapshot(self) -> StatsSnapshot:
        """A JSON-ready summary (the report's row)."""
        return StatsSnapshot(
            fingerprint=self.fingerprint.id,
            normalized=self.fingerprint.normalized,
            operation=self.fingerprint.operation,
            count=self.count,
            total_ms=self.total_s * 1e3,
            mean_ms=self.mean_s * 1e3,
            p50_ms=self.percentile(0.50) * 1e3,
            p95_ms=self.percentile(0.95) * 1e3,
            p99_ms=self.percentile(0.99) * 1e3,
            max_ms=self.max_s * 1e3,
            rows=self.rows,
            call_site=self.call_site,
            example={"statement": self.example_statement, "parameters": _clip_parameters(self.example_parameters)},
            plan=self.plan,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsSnapshot:
    """One fingerprint's figures at a point in time, in milliseconds; the rows of `overdrive db report`.

    Percentiles are None where the source keeps none (pg_stat_statements).
    """

    fingerprint: str
    normalized: str
    operation: str
    count: int
    total_ms: float
    mean_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float
    rows: int
    call_site: str | None
    example: dict[str, Any]
    plan: Any = None


class QueryStore:
    """The bounded set of `QueryStats`, keyed by fingerprint id.

    Args:
        max_fingerprints: how many distinct fingerprints to keep; the least-used tenth is evicted when full.

    """

    __slots__ = ("_stats", "evicted", "max_fingerprints")

    def __init__(self, max_fingerprints: int = DEFAULT_MAX_FINGERPRINTS) -> None:
        if max_fingerprints < 1:
            msg = f"max_fingerprints must be at least 1, not {max_fingerprints!r}."
            raise ValueError(msg)
        self.max_fingerprints = max_fingerprints
        self._stats: dict[str, QueryStats] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._stats)

    def stats_for(self, fingerprint: Fingerprint) -> tuple[QueryStats, bool]:
        """The stats of `fingerprint`, created if new; the flag says whether it was just created."""
        found = self._stats.get(fingerprint.id)
        if found is not None:
            return found, False
        if len(self._stats) >= self.max_fingerprints:
            self._evict()
        stats = self._stats[fingerprint.id] = QueryStats(fingerprint)
        return stats, True

    def get(self, fingerprint_id: str) -> QueryStats | None:
        """The stats of one fingerprint id, if kept."""
        return self._stats.get(fingerprint_id)

    def _evict(self) -> None:
        victims = max(1, self.max_fingerprints // 10)
        least_used = sorted(self._stats.values(), key=lambda s: (s.count, s.total_s))[:victims]
        for stats in least_used:
            del self._stats[stats.fingerprint.id]
        self.evicted += len(least_used)

    def top(self, n: int | None = None, *, by: str = "total") -> list[QueryStats]:
        """The `n` costliest fingerprints (all when None), by ``total`` time, ``mean``, ``p95`` or ``count``."""
        keys = {
            "total": lambda s: s.total_s,
            "mean": lambda s: s.mean_s,
            "p95": lambda s: s.percentile(0.95),
            "count": lambda s: s.count,
        }
        if by not in keys:
            msg = f"Cannot rank queries by {by!r}; choose one of: {', '.join(keys)}."
            raise ValueError(msg)
        ranked = sorted(self._stats.values(), key=keys[by], reverse=True)
        return ranked if n is None else ranked[:n]

    def snapshots(self, n: int | None = None, *, by: str = "total") -> list[StatsSnapshot]:
        """`top` as JSON-ready rows."""
        return [stats.snapshot() for stats in self.top(n, by=by)]

    def clear(self) -> None:
        """Forget every fingerprint."""
        self._stats.clear()
