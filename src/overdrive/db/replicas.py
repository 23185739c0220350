"""Read replica routing for SQLAlchemy 2 sessions, sync and async, with read-your-writes.

    router = ReplicaRouter(primary=engine, replicas=[replica_engine])
    Session = router.sessionmaker()                 # or router.async_sessionmaker() for AsyncEngines
    with Session() as session:
        session.scalars(select(Post))               # a replica
        with session.begin():
            session.add(Post(title="hi"))           # the primary, and so is every later read of this transaction
        session.get(Post, 1)                        # the primary, until a replica has replayed that commit

SQLAlchemy documents the starting point as the "custom vertical partitioning" recipe: a `Session` subclass whose
``get_bind()`` sends flushes and UPDATE/DELETE to the leader and everything else to a random follower. On its own
that recipe reads stale data and drifts: a transaction that wrote reads its own rows back from a follower that has not
got them (or never will: they are uncommitted), consecutive reads hop between followers at different positions,
``SELECT ... FOR UPDATE`` and INSERT go to a follower, a follower that is down or hours behind still gets reads, and
after a commit the next read, in the same session or the user's next request, may not see it. This module adds:

- per-transaction stickiness: once a transaction writes (flush, DML, ``text()``, ``session.connection()``) or locks
  (``FOR UPDATE``/``FOR SHARE``), all its statements go to the primary; reads before that stay on one replica;
- read-your-writes: after a write commits, the primary's WAL insert position (``pg_current_wal_insert_lsn()``, at or
  past the commit record) becomes the floor that reads must see; a replica serves them only once its replay position
  (``pg_last_wal_replay_lsn()``) has reached it. The floor lives in the session and, inside `ReplicaRouter.track`
  (which `overdrive.db.consistency.ReadYourWritesMiddleware` opens per request), in a `ConsistencyScope` that travels
  to the client's next request as a signed token;
- health: replay positions and lag polled at most every ``poll_interval`` (no round trip per read), replicas lagging
  beyond ``max_lag_bytes``/``max_lag_seconds``, promoted, or failing to connect are skipped (the latter for
  ``retry_after`` seconds), and with none left reads go to the primary.

Per statement, ``route="primary"`` or ``route="replica"`` in ``bind_arguments`` or the statement's execution options
overrides the choice (``text()`` goes to the primary unless marked ``route="replica"``: it may write). Writes made
outside routed sessions (a bare ``engine.begin()``) are not seen and give no read-your-writes guarantee.

Only PostgreSQL has WAL positions: with any other primary, SQLite included, routing degenerates to the primary, every
statement goes there, and the router accepts no replicas.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.util import greenlet_spawn

from overdrive.db._lsn import UNKNOWN_LSN, parse_lsn
from overdrive.db._replica_health import Balance, ReplicaMonitor, ReplicaStatus, first_line
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.sql import ClauseElement

__all__ = ["ConsistencyScope", "ReplicaRouter", "ReplicaStatus", "RoutedSession"]

log = logging.getLogger("overdrive.db")

_INSERT_POSITION = sa.text("SELECT pg_current_wal_insert_lsn()::text")
ROUTE = "route"


@dataclass(slots=True)
class ConsistencyScope:
    """The read-your-writes state of one request or task, shared by every routed session inside it.

    Attributes:
        floor: The WAL position reads must see (after the scope's or its client's last write), or None.
        wrote: Whether a write committed inside this scope, so the client needs a new token.

    """

    floor: int | None = None
    wrote: bool = False

    def note_write(self, lsn: int) -> None:
        """Raise the floor to a committed write's position ``lsn``."""
        # A known position read after this commit covers every earlier write, the unknown ones included.
        if self.floor is None or UNKNOWN_LSN in {self.floor, lsn}:
            self.floor = lsn
        else:
            self.floor = max(self.floor, lsn)
        self.wrote = True


class ReplicaRouter:
    """Makes sessions whose reads go to replicas and whose writes go to the primary.

    Args:
        primary: The primary's engine, sync or async.
        replicas: Engines of streaming replicas of that primary, of the same kind. Create them with
            ``pool_pre_ping=True`` so a replica that stops is skipped at checkout rather than failing a read.
        max_lag_bytes: Skip replicas more WAL bytes behind the primary than this; None: no limit.
        max_lag_seconds: Skip replicas whose last replayed commit is older than this while they have received WAL
            they have not applied yet (an idle primary makes no replica lag); None: no limit.
        poll_interval: Seconds between polls of the replicas' positions; reads in between use the cached ones.
        retry_after: Seconds a replica that failed to connect or answer is skipped.
        balance: ``"round_robin"`` among eligible replicas, or ``"least_lag"``.
        clock: Monotonic seconds, for the poll interval and retry delay; injectable for tests.

    Raises:
        ConfigurationError: Sync and async engines are mixed, replicas are given for a database other than
            PostgreSQL, or a setting is out of range.

    """

    def __init__(
        self,
        *,
        primary: Engine | AsyncEngine,
        replicas: Sequence[Engine | AsyncEngine] = (),
        max_lag_bytes: int | None = 16 * 2**20,
        max_lag_seconds: float | None = 5.0,
        poll_interval: float = 0.1,
        retry_after: float = 5.0,
        balance: Balance = "round_robin",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.is_async = isinstance(primary, AsyncEngine)
        if any(isinstance(replica, AsyncEngine) != self.is_async for replica in replicas):
            msg = "The primary and the replicas must all be sync engines or all be async engines."
            raise ConfigurationError(msg)
        self.primary = _sync(primary)
        self._async_primary = primary if isinstance(primary, AsyncEngine) else None
        self.routes = self.primary.dialect.name == "postgresql"
        if replicas and not self.routes:
            msg = (
                f"Replica routing needs PostgreSQL (it compares WAL positions), but the primary is "
                f"{self.primary.dialect.name}; pass no replicas and every statement goes to the primary."
            )
            raise ConfigurationError(msg)
        if poll_interval <= 0 or retry_after < 0:
            msg = f"poll_interval must be positive and retry_after not negative; got {poll_interval}, {retry_after}."
            raise ConfigurationError(msg)
        if balance not in {"round_robin", "least_lag"}:
            msg = f"balance must be 'round_robin' or 'least_lag'; got {balance!r}."
            raise ConfigurationError(msg)
        self.max_lag_seconds = max_lag_seconds
        self.monitor = ReplicaMonitor(
            self.primary,
            [_sync(replica) for replica in replicas],
            max_lag_bytes=max_lag_bytes,
            max_lag_seconds=max_lag_seconds,
            poll_interval=poll_interval,
            retry_after=retry_after,
            balance=balance,
            clock=clock,
        )
        self._scope: ContextVar[ConsistencyScope | None] = ContextVar("overdrive_consistency_scope", default=None)

    def sessionmaker(self, **options: Any) -> sessionmaker[RoutedSession]:
        """Return a factory of routed sync sessions; ``options`` go to `sqlalchemy.orm.sessionmaker`.

        Raises:
            ConfigurationError: The router holds async engines.

        """
        if self.is_async:
            msg = "This router holds async engines; use async_sessionmaker()."
            raise ConfigurationError(msg)
        return sessionmaker(self.primary, class_=RoutedSession, router=self, **options)

    def async_sessionmaker(self, **options: Any) -> async_sessionmaker[AsyncSession]:
        """Return a factory of async sessions over routed sessions; ``options`` go to `async_sessionmaker`.

        Raises:
            ConfigurationError: The router holds sync engines.

        """
        if self._async_primary is None:
            msg = "This router holds sync engines; use sessionmaker()."
            raise ConfigurationError(msg)
        return async_sessionmaker(self._async_primary, sync_session_class=RoutedSession, router=self, **options)

    @contextmanager
    def track(self, floor: int | None = None) -> Iterator[ConsistencyScope]:
        """Share read-your-writes state among the routed sessions of one request or task.

        Args:
            floor: The WAL position the caller's earlier writes reached (from its token), or None.

        Yields:
            The scope; its ``floor`` rises with each write committed inside it.

        """
        scope = ConsistencyScope(floor=floor)
        reset = self._scope.set(scope)
        try:
            yield scope
        finally:
            self._scope.reset(reset)

    def current_scope(self) -> ConsistencyScope | None:
        """The scope opened by the innermost `track` around the caller, or None."""
        return self._scope.get()

    def statuses(self) -> list[ReplicaStatus]:
        """What the router last learned about each replica."""
        return self.monitor.statuses()

    def refresh(self) -> None:
        """Poll every replica now (sync engines)."""
        self.monitor.refresh()

    async def refresh_async(self) -> None:
        """Poll every replica now (async engines)."""
        await greenlet_spawn(self.monitor.refresh)

    def write_position(self) -> int:
        """The primary's WAL insert position, or `UNKNOWN_LSN` when it cannot be read (runs in a session's context)."""
        try:
            with self.monitor.autocommit(self.primary).connect() as conn:
                return parse_lsn(conn.execute(_INSERT_POSITION).scalar_one())
        except Exception:  # the write is committed; an unknown position keeps reads on the primary
            log.warning("Could not read the primary's WAL position after a commit.", exc_info=True)
            return UNKNOWN_LSN


class RoutedSession(Session):
    """A `Session` whose ``get_bind()`` picks the primary or a replica per statement; made by `ReplicaRouter`.

    ``session.connection()`` and ``get_bind()`` without a statement return the primary and count as a write (the
    caller may run anything on it), as does any ``text()`` not marked ``route="replica"``.

    Args:
        bind: The primary (the router's by default).
        router: The router that owns the engines and the consistency scope.
        **options: Passed to `Session`.

    Attributes:
        floor: The WAL position after this session's last committed write, or None: its reads must see it.

    """

    def __init__(self, bind: Engine | Connection | None = None, *, router: ReplicaRouter, **options: Any) -> None:
        super().__init__(bind=router.primary if bind is None else bind, **options)
        self.router = router
        self.floor: int | None = None
        self._on_primary = False
        self._wrote = False
        self._committed_write = False
        self._replica: tuple[Engine, int] | None = None

    def get_bind(
        self,
        mapper: Any = None,  # noqa: ARG002 -- the signature of Session.get_bind; routing ignores mappers
        *,
        clause: ClauseElement | None = None,
        bind: Any = None,
        _sa_skip_events: bool | None = None,
        _sa_skip_for_implicit_returning: bool = False,
        **kw: Any,
    ) -> Engine | Connection:
        """Return the engine for one statement: the primary for writes and locks, else a replica able to serve it."""
        if bind is not None:
            return bind  # type: ignore[no-any-return]
        primary = self.router.primary
        if not self.router.routes:
            return primary
        route = kw.get(ROUTE) or _statement_route(clause)
        if route == "primary" or self._on_primary or self.in_nested_transaction():
            return primary
        if clause is None or _sa_skip_for_implicit_returning or not _is_read(clause, route):
            self._on_primary = True
            self._wrote = self._wrote or not _is_lock(clause)
            return primary
        return self._read_bind()

    def _read_bind(self) -> Engine:
        primary = self.router.primary
        floor = self._floor()
        if floor == UNKNOWN_LSN:
            return primary
        if self._replica is not None:
            engine, seen = self._replica
            return engine if floor is None or floor <= seen else primary
        monitor = self.router.monitor
        monitor.refresh_if_due()
        for engine, replay_lsn in monitor.eligible(floor):
            if self._check_out(engine):
                self._replica = (engine, replay_lsn)
                return engine
        return primary

    def _floor(self) -> int | None:
        scope = self.router.current_scope()
        if scope is None or scope.floor is None:
            return self.floor
        if self.floor is None:
            return scope.floor
        return max(self.floor, scope.floor)

    def _check_out(self, engine: Engine) -> bool:
        # Connect now, so a replica that is down sends this read to the next one rather than failing it.
        try:
            self.connection(bind_arguments={"bind": engine})
        except Exception as exc:  # noqa: BLE001 -- any connect failure means: not this replica, for a while
            self.router.monitor.mark_down(engine, f"It refused a connection: {first_line(exc)}")
            return False
        return True

    def _transaction_committed(self) -> None:
        self._committed_write = self._wrote

    def _transaction_ended(self) -> None:
        committed_write = self._committed_write
        self._on_primary = self._wrote = self._committed_write = False
        self._replica = None
        if not committed_write or not self.router.routes:
            return
        lsn = self.router.write_position()
        self.floor = lsn
        scope = self.router.current_scope()
        if scope is not None:
            scope.note_write(lsn)


@event.listens_for(RoutedSession, "after_commit")
def _after_commit(session: Session) -> None:
    if isinstance(session, RoutedSession) and not session.in_nested_transaction():
        session._transaction_committed()


@event.listens_for(RoutedSession, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if isinstance(session, RoutedSession) and transaction.parent is None:
        session._transaction_ended()


def _sync(engine: Engine | AsyncEngine) -> Engine:
    return engine.sync_engine if isinstance(engine, AsyncEngine) else engine


def _statement_route(clause: object) -> str | None:
    if isinstance(clause, sa.Executable):
        route: str | None = clause.get_execution_options().get(ROUTE)
        return route
    return None


def _is_read(clause: ClauseElement, route: str | None) -> bool:
    if isinstance(clause, UpdateBase):
        return False
    if isinstance(clause, SelectBase):
        return not _is_lock(clause)
    return route == "replica"


def _is_lock(clause: ClauseElement | None) -> bool:
    # Select keeps FOR UPDATE / FOR SHARE in _for_update_arg; no public accessor exists.
    return getattr(clause, "_for_update_arg", None) is not None
