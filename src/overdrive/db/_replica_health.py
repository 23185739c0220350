"""Replica health and replay positions, polled at most once per interval and cached in between.

One poll asks the primary for its WAL write position and each replica for its replay position, whether it is still
in recovery and how old its last replayed commit is. Reads consult only the cache; the read that finds the cache
older than ``poll_interval`` refreshes it, and concurrent readers meanwhile keep using the old values, which stay
safe: a replica's replay position only moves forward, so a cached one is a lower bound of the real one.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from overdrive.db._lsn import parse_lsn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.engine import Engine

__all__ = ["Balance", "ReplicaMonitor", "ReplicaStatus", "first_line"]

log = logging.getLogger("overdrive.db")

Balance = Literal["round_robin", "least_lag"]

_PRIMARY_POSITION = sa.text("SELECT pg_current_wal_lsn()::text")
_REPLICA_STATE = sa.text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, "
    "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaStatus:
    """What the router last learned about one replica.

    Attributes:
        name: The replica's URL, password hidden.
        healthy: It answered, is still a standby and lags no more than the router allows.
        replay_lsn: The WAL position it had replayed, as an integer; None before the first answer.
        lag_bytes: How far its replay position trailed the primary's write position; None when unknown.
        lag_seconds: Age of its last replayed commit while it had WAL left to apply; 0 when it had applied all it
            had received or all the primary had written.
        checked_at: When it last answered or failed (the router's monotonic clock).
        retry_at: While the clock is before this, the replica is considered down and is not polled.
        error: Why it is unhealthy, as a sentence; None when healthy.

    """

    name: str
    healthy: bool = False
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    checked_at: float | None = None
    retry_at: float = 0.0
    error: str | None = "It has not been polled yet."


class ReplicaMonitor:
    """Polls replicas' replay positions and health, and picks a replica able to serve a read.

    Args:
        primary: The primary's engine (sync, or an async engine's ``sync_engine``).
        replicas: The replicas' engines.
        max_lag_bytes: Skip replicas whose replay trails the primary by more WAL bytes than this; None: no limit.
        max_lag_seconds: Skip replicas whose lag in seconds exceeds this; None: no limit.
        poll_interval: How long polled positions are reused, in seconds.
        retry_after: How long a replica that failed to answer is skipped before it is polled again.
        balance: ``"round_robin"`` over eligible replicas, or ``"least_lag"`` (fewest bytes behind).
        clock: Monotonic seconds; injectable for tests.

    """

    def __init__(
        self,
        primary: Engine,
        replicas: Sequence[Engine],
        *,
        max_lag_bytes: int | None,
        max_lag_seconds: float | None,
        poll_interval: float,
        retry_after: float,
        balance: Balance,
        clock: Callable[[], float],
    ) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self.max_lag_bytes = max_lag_bytes
        self.max_lag_seconds = max_lag_seconds
        self.poll_interval = poll_interval
        self.retry_after = retry_after
        self.balance = balance
        self._clock = clock
        self._status = {engine: ReplicaStatus(name=_name(engine)) for engine in self.replicas}
        # Polls in autocommit mode: no BEGIN and ROLLBACK round trips around a one-line query.
        self._autocommit = {
            engine: engine.execution_options(isolation_level="AUTOCOMMIT") for engine in (primary, *self.replicas)
        }
        self._primary_lsn: int | None = None
        self._polled_at = float("-inf")
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def autocommit(self, engine: Engine) -> Engine:
        """``engine`` (the primary or a replica) in autocommit mode, for one-statement probes."""
        return self._autocommit[engine]

    def statuses(self) -> list[ReplicaStatus]:
        """The last known status of every replica, in the order they were given."""
        return [self._status[engine] for engine in self.replicas]

    def refresh_if_due(self) -> None:
        """Poll when the cache is older than the interval, unless another caller is polling right now."""
        if self._clock() - self._polled_at < self.poll_interval:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._poll()
        finally:
            self._lock.release()

    def refresh(self) -> None:
        """Poll now, waiting for a poll in progress elsewhere to finish first."""
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        try:
            with self._autocommit[self.primary].connect() as conn:
                self._primary_lsn = parse_lsn(conn.execute(_PRIMARY_POSITION).scalar_one())
        except Exception:  # any failure leaves the last position; reads still work on replicas
            log.warning("Could not read the primary's WAL position; byte lag uses the previous one.", exc_info=True)
        for engine in self.replicas:
            if self._status[engine].retry_at <= self._clock():
                self._poll_replica(engine)
        self._polled_at = self._clock()

    def _poll_replica(self, engine: Engine) -> None:
        try:
            with self._autocommit[engine].connect() as conn:
                in_recovery, replay, received, age = conn.execute(_REPLICA_STATE).one()
        except Exception as exc:  # noqa: BLE001 -- whatever the failure, the replica cannot serve reads now
            self.mark_down(engine, f"It could not be polled: {first_line(exc)}")
            return
        previous = self._status[engine]
        if not in_recovery or replay is None:
            self._set(engine, replace(previous, healthy=False, checked_at=self._clock(), error=_NOT_STANDBY))
            return
        replay_lsn = parse_lsn(replay)
        lag_bytes = None if self._primary_lsn is None else max(0, self._primary_lsn - replay_lsn)
        # An idle primary writes no commits, so the last replayed one ages although nothing is missing: its age
        # counts only while the replica trails the primary and has received WAL it has not applied yet.
        applied_all = received is not None and replay_lsn >= parse_lsn(received)
        if lag_bytes == 0 or applied_all:
            lag_seconds: float | None = 0.0
        else:
            lag_seconds = None if age is None else max(0.0, float(age))
        error = self._lag_error(lag_bytes, lag_seconds)
        status = ReplicaStatus(
            name=previous.name,
            healthy=error is None,
            replay_lsn=replay_lsn,
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            checked_at=self._clock(),
            error=error,
        )
        self._set(engine, status)

    def _lag_error(self, lag_bytes: int | None, lag_seconds: float | None) -> str | None:
        if self.max_lag_bytes is not None and lag_bytes is not None and lag_bytes > self.max_lag_bytes:
            return f"It lags {lag_bytes} WAL bytes behind the primary, more than the {self.max_lag_bytes} allowed."
        if self.max_lag_seconds is not None and lag_seconds is not None and lag_seconds > self.max_lag_seconds:
            return f"It lags {lag_seconds:.3f} s behind the primary, more than the {self.max_lag_seconds} s allowed."
        return None

    def mark_down(self, engine: Engine, reason: str) -> None:
        """Skip ``engine`` for ``retry_after`` seconds, because it failed to answer."""
        now = self._clock()
        previous = self._status[engine]
        if previous.healthy or previous.error != reason:
            log.warning("Replica %s is skipped for %.1f s. %s", previous.name, self.retry_after, reason)
        self._set(
            engine, replace(previous, healthy=False, checked_at=now, retry_at=now + self.retry_after, error=reason)
        )

    def _set(self, engine: Engine, status: ReplicaStatus) -> None:
        if status.healthy and not self._status[engine].healthy:
            log.info("Replica %s serves reads.", status.name)
        self._status[engine] = status

    def eligible(self, floor: int | None) -> list[tuple[Engine, int]]:
        """Healthy replicas that have replayed past ``floor``, in the order to try them, with their replay positions.

        Args:
            floor: The WAL position a read must see, or None when it may see any healthy replica's data.

        """
        now = self._clock()
        found = [
            (engine, status.replay_lsn)
            for engine, status in self._status.items()
            if status.healthy
            and status.replay_lsn is not None
            and status.retry_at <= now
            and (floor is None or status.replay_lsn >= floor)
        ]
        if len(found) < 2:  # noqa: PLR2004 -- nothing to balance
            return found
        if self.balance == "least_lag":
            return sorted(found, key=lambda pair: -pair[1])
        start = next(self._turn) % len(found)
        return found[start:] + found[:start]


_NOT_STANDBY = "It is not in recovery (promoted, or not a standby), so its data may have diverged from the primary's."


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
