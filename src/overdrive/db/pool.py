"""Connection-pool metrics and sizing advice for SQLAlchemy engines.

    pool = PoolMonitor(engine)               # sync Engine or AsyncEngine, QueuePool-style pools
    ...
    pool.stats()                             # PoolStats: size, checked out, overflow, waits, wait p95, timeouts
    pool_size_hint(workers=4, database_cores=8, max_connections=100)

Checked-out, overflow and idle counts are read from the pool's public methods when asked. Wait time, the time a
caller spent getting a connection (queueing for a free one, or opening a new one), has no SQLAlchemy event, so
the monitor wraps the pool's public ``connect()`` on that one pool instance; `close()` puts it back. Checkouts and
new connections are counted through the pool events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from overdrive.db.querystats import LatencyHistogram
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import Pool

__all__ = ["PoolMonitor", "PoolSizeHint", "PoolStats", "pool_size_hint"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStats:
    """A pool's state and history at one moment.

    Attributes:
        size: the pool's steady size (``pool_size``); None for pools without one (NullPool, StaticPool ...).
        checked_out: connections in use now.
        idle: connections waiting in the pool now.
        overflow: connections open beyond `size` now.
        max_overflow: the most overflow allowed, when known.
        peak_checked_out: the most connections in use at once since the monitor started.
        checkouts: connections handed out.
        connects: new database connections opened.
        waits: calls to the pool that were timed; wait_p50_ms / wait_p95_ms / wait_max_ms are their durations.
        timeouts: calls that gave up waiting (the pool's ``pool_timeout``).

    """

    size: int | None
    checked_out: int
    idle: int
    overflow: int
    max_overflow: int | None
    peak_checked_out: int
    checkouts: int
    connects: int
    waits: int
    wait_p50_ms: float
    wait_p95_ms: float
    wait_max_ms: float
    timeouts: int

    @property
    def saturated(self) -> bool:
        """Every connection the pool may open has been in use at once."""
        if self.size is None or self.max_overflow is None or self.max_overflow < 0:
            return False
        return self.peak_checked_out >= self.size + self.max_overflow


class PoolMonitor:
    """Counts and times an engine's pool.

    Args:
        engine: a sync `Engine` or an `AsyncEngine` (its ``sync_engine``'s pool is used).

    """

    def __init__(self, engine: Engine | AsyncEngine) -> None:
        sync_engine = engine if isinstance(engine, Engine) else engine.sync_engine
        self.pool: Pool = sync_engine.pool
        self.checkouts = 0
        self.connects = 0
        self.timeouts = 0
        self.peak_checked_out = 0
        self.waits = LatencyHistogram()
        self._connect: Callable[[], Any] = self.pool.connect
        self.pool.connect = self._timed_connect  # type: ignore[method-assign]
        event.listen(self.pool, "checkout", self._on_checkout)
        event.listen(self.pool, "connect", self._on_connect)
        self._closed = False

    def _timed_connect(self) -> Any:
        started = perf_counter()
        try:
            return self._connect()
        except TimeoutError:
            self.timeouts += 1
            raise
        except Exception as error:
            if type(error).__name__ == "TimeoutError":  # sqlalchemy.exc.TimeoutError is not the builtin
                self.timeouts += 1
            raise
        finally:
            self.waits.record(perf_counter() - started)

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1
        in_use = self._count("checkedout")
        if in_use is not None and in_use > self.peak_checked_out:
            self.peak_checked_out = in_use

    def _on_connect(self, *_: Any) -> None:
        self.connects += 1

    def _count(self, name: str) -> int | None:
        method = getattr(self.pool, name, None)
        return int(method()) if callable(method) else None

    def stats(self) -> PoolStats:
        """The pool's figures now."""
        size = self._count("size")
        overflow = self._count("overflow")
        max_overflow = getattr(self.pool, "_max_overflow", None)
        return PoolStats(
            size=size,
            checked_out=self._count("checkedout") or 0,
            idle=self._count("checkedin") or 0,
            overflow=max(0, overflow or 0),
            max_overflow=max_overflow if isinstance(max_overflow, int) else None,
            peak_checked_out=self.peak_checked_out,
            checkouts=self.checkouts,
            connects=self.connects,
            waits=self.waits.count,
            wait_p50_ms=self.waits.percentile(0.50) * 1e3,
            wait_p95_ms=self.waits.percentile(0.95) * 1e3,
            wait_max_ms=self.waits.max_s * 1e3,
            timeouts=self.timeouts,
        )

    def close(self) -> None:
        """Stop monitoring: the pool's own ``connect`` and no listeners remain."""
        if self._closed:
            return
        self._closed = True
        del self.pool.connect  # the instance attribute goes; the class's method shows through again
        event.remove(self.pool, "checkout", self._on_checkout)
        event.remove(self.pool, "connect", self._on_connect)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSizeHint:
    """Suggested pool settings per worker process, and why.

    Attributes:
        pool_size: ``pool_size`` for each worker's engine.
        max_overflow: ``max_overflow`` for each worker's engine.
        total: connections all workers may open together (``workers * (pool_size + max_overflow)``).
        reasons: the rules that led here, in plain words.
        warnings: problems found with the current settings or the server's limits.

    """

    pool_size: int
    max_overflow: int
    total: int
    reasons: list[str]
    warnings: list[str]


def pool_size_hint(
    *,
    workers: int,
    database_cores: int,
    spindles: int = 1,
    max_connections: int | None = None,
    reserved_connections: int = 3,
    observed: PoolStats | None = None,
) -> PoolSizeHint:
    """Size each worker's pool so that all workers together keep the database busy without thrashing it.

    The budget for the whole fleet follows the widely used rule "connections = cores x 2 + effective spindles"
    (a PostgreSQL server does its best work with a few active connections per core; more only queue inside it).
    It is split across `workers`, with at least one connection each; overflow allows short bursts of up to half
    the pool again. When `max_connections` is given, the total must stay under it minus `reserved_connections`
    (superuser and maintenance slots). When `observed` stats are given, waits and saturation add advice.

    Raises:
        ConfigurationError: non-positive workers, cores or spindles.

    """
    if workers < 1 or database_cores < 1 or spindles < 0:
        got = f"workers={workers}, database_cores={database_cores}, spindles={spindles}"
        msg = f"workers and database_cores must be at least 1 and spindles at least 0 ({got})."
        raise ConfigurationError(msg)
    budget = database_cores * 2 + spindles
    reasons = [f"fleet budget = {database_cores} cores x 2 + {spindles} spindle(s) = {budget} active connections"]
    pool_size = max(1, budget // workers)
    reasons.append(f"split over {workers} worker(s): pool_size = max(1, {budget} // {workers}) = {pool_size}")
    max_overflow = max(1, math.ceil(pool_size / 2))
    reasons.append(f"max_overflow = half the pool, at least 1 = {max_overflow} (bursts only)")
    warnings: list[str] = []
    if pool_size * workers > budget:
        warnings.append(
            f"{workers} workers with one connection each exceed the budget of {budget}: "
            "fewer workers, or a connection pooler (PgBouncer) in front of the database, will queue less."
        )
    total = workers * (pool_size + max_overflow)
    if max_connections is not None:
        usable = max_connections - reserved_connections
        if total > usable:
            max_overflow = max(0, usable // workers - pool_size)
            total = workers * (pool_size + max_overflow)
            reasons.append(f"max_overflow cut to {max_overflow} to fit max_connections={max_connections}")
            if total > usable:
                warnings.append(
                    f"{workers} workers x pool_size {pool_size} = {total} connections exceed max_connections "
                    f"{max_connections} minus {reserved_connections} reserved: connections will be refused."
                )
    if observed is not None:
        if observed.timeouts:
            warnings.append(f"{observed.timeouts} checkout(s) timed out: the pool is too small for the load.")
        if observed.saturated and observed.wait_p95_ms > 1.0:
            warnings.append(
                f"every connection was in use at once and p95 wait was {observed.wait_p95_ms:.1f} ms: "
                "requests queue for connections; shorten transactions or raise pool_size within the budget."
            )
        elif observed.size is not None and observed.peak_checked_out < observed.size / 2 and observed.checkouts:
            reasons.append(
                f"observed peak use {observed.peak_checked_out} of {observed.size}: the current pool is larger than "
                "this load needs"
            )
    return PoolSizeHint(pool_size=pool_size, max_overflow=max_overflow, total=total, reasons=reasons, warnings=warnings)
