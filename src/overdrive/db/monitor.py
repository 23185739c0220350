"""Query instrumentation for SQLAlchemy 2 through its public events: per-scope counts, N+1 detection, statistics.

    monitor = QueryMonitor(n_plus_one="warn")
    monitor.instrument(engine)              # sync Engine or AsyncEngine
    with monitor.scope() as scope:          # one request or task; QueryScopeMiddleware opens one per request
        ...
    scope.queries, scope.duration_s, scope.findings

Every statement an instrumented engine sends is timed, fingerprinted and added to the monitor's bounded
`QueryStore`, whether or not a scope is open. Timing uses the dialect events (``do_execute``, ``do_executemany``,
``do_execute_no_params``): the listener runs the dialect's own method between two clock reads and reports the
statement handled. That costs about 0.5 µs a statement in SQLAlchemy itself, where a ``before/after_cursor_execute``
pair costs about 4 µs, measured on this project's machine (BENCHMARKS.md). A user listener that replaces statement
execution through the same events would be bypassed; listeners of every other event still run.

Inside a scope the monitor also counts queries and looks for N+1 patterns:

- a lazy load (``do_orm_execute`` with ``lazy_loaded_from``) of the same relationship for two or more objects that
  came from one multi-row result (the ORM ``load`` event tells which result an object came from), so touching the
  relationship of one object, or of an object from ``session.get()``, is never flagged;
- the same SELECT fingerprint run more than `repeat_threshold` times (a loop of lookups), lazy loads excepted.

A finding names the relationship or statement, how often it ran, the application line that ran it and the line
that loaded the parents, and the fix (``selectinload``/``joinedload`` or a batch loader). `n_plus_one` chooses what
happens when one is found: ``off`` (no detection), ``record`` (kept in the scope only), ``log`` (logger
``overdrive.db``), ``warn`` (`NPlusOneWarning`) or ``raise`` (`NPlusOneError` from the offending query, for tests).

The ORM events are registered on SQLAlchemy's `Session` and `Mapper` classes (they are per-process in SQLAlchemy);
they do nothing outside this monitor's scopes. `uninstrument()` removes every listener.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import count
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state

from overdrive.db.callsite import CallSiteFinder
from overdrive.db.fingerprint import Fingerprint, Fingerprinter
from overdrive.db.querystats import QueryStats, QueryStore
from overdrive.exceptions import ConfigurationError, NPlusOneError, NPlusOneWarning

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import ExecutionContext
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.orm import ORMExecuteState, QueryContext
    from sqlalchemy.orm.state import InstanceState

__all__ = ["NPlusOne", "NPlusOneMode", "QueryMonitor", "QueryScope"]

NPlusOneMode = Literal["off", "record", "log", "warn", "raise"]
_MODES: tuple[NPlusOneMode, ...] = ("off", "record", "log", "warn", "raise")
_LAZY_OPTION = "overdrive_lazy_load"
_MAX_TRACKED_OBJECTS = 100_000
_MULTI_ROW = 2
_READS = frozenset({"SELECT", "WITH", "(SELECT"})
logger = logging.getLogger("overdrive.db")
_monitor_ids = count(1)


@dataclass(slots=True)
class NPlusOne:
    """One N+1 pattern found in a scope.

    Attributes:
        kind: ``lazy_load`` (a relationship loaded object by object) or ``repeated`` (one SELECT run in a loop).
        subject: the relationship (``Order.items``) or the normalized statement.
        count: how many times it ran in the scope so far.
        call_site: ``file:line`` of the application code that ran it.
        parents_site: for lazy loads, ``file:line`` where the parent objects were loaded.
        fingerprint: the repeated statement's fingerprint id, when known.
        suggestion: how to fix it.

    """

    kind: Literal["lazy_load", "repeated"]
    subject: str
    count: int
    call_site: str | None
    parents_site: str | None = None
    fingerprint: str | None = None
    suggestion: str = ""

    def describe(self) -> str:
        """One paragraph for a log line, a warning or an assertion message."""
        if self.kind == "lazy_load":
            head = f"N+1: {self.subject} is lazy-loaded with one query per parent object ({self.count} so far)"
            where = f" at {self.call_site or '(unknown)'}; parents loaded at {self.parents_site or '(unknown)'}"
        else:
            head = f"N+1: the same query ran {self.count} times so far: {self.subject}"
            where = f" at {self.call_site or '(unknown)'}"
        return f"{head}{where}. Fix: {self.suggestion}"


@dataclass(slots=True, eq=False)
class QueryScope:
    """What one request or task sent to the database.

    Attributes:
        name: a label for reports (e.g. the route).
        queries: statements executed.
        duration_s: their summed time, in seconds.
        by_fingerprint: executions per fingerprint id.
        findings: N+1 patterns found, in the order found.
        statements: ``(normalized SQL, call site)`` of each statement, kept only when `record_statements` is on.

    """

    name: str | None = None
    queries: int = 0
    duration_s: float = 0.0
    by_fingerprint: dict[str, int] = field(default_factory=dict)
    findings: list[NPlusOne] = field(default_factory=list)
    record_statements: bool = False
    statements: list[tuple[str, str | None]] = field(default_factory=list)
    _repeated: dict[str, NPlusOne] = field(default_factory=dict, repr=False)
    _lazy: dict[tuple[int, str], NPlusOne] = field(default_factory=dict, repr=False)
    _lazy_seen: dict[tuple[int, str], int] = field(default_factory=dict, repr=False)
    _parent_of: dict[InstanceState[Any], QueryContext] = field(default_factory=dict, repr=False)
    _result_rows: dict[QueryContext, int] = field(default_factory=dict, repr=False)
    _result_sites: dict[QueryContext, str | None] = field(default_factory=dict, repr=False)


class QueryMonitor:
    """Times, fingerprints and counts the queries of instrumented engines, and finds N+1 patterns in scopes.

    Args:
        n_plus_one: what to do on an N+1 finding: ``off``, ``record``, ``log``, ``warn`` or ``raise``.
        repeat_threshold: a SELECT fingerprint run more often than this in one scope is a finding.
        lazy_threshold: lazy loads of one relationship from one multi-row result before it is a finding.
        store: where per-fingerprint statistics go (a bounded `QueryStore` by default).
        call_sites: record the application line that first ran each fingerprint (a stack walk per new fingerprint).
        explain_slower_than: seconds; the first SELECT of a fingerprint slower than this gets its plan captured
            (``EXPLAIN`` on the same connection, never ``ANALYZE``: nothing runs twice) and attached to its stats,
            with the plan's warnings (sequential scans of large tables, sorts no index serves, deep OFFSETs).
            None (the default) captures nothing. One plan per fingerprint, so the cost is bounded.

    """

    def __init__(
        self,
        *,
        n_plus_one: NPlusOneMode = "warn",
        repeat_threshold: int = 5,
        lazy_threshold: int = 2,
        store: QueryStore | None = None,
        call_sites: bool = True,
        explain_slower_than: float | None = None,
    ) -> None:
        if n_plus_one not in _MODES:
            msg = f"n_plus_one must be one of {', '.join(_MODES)}, not {n_plus_one!r}."
            raise ConfigurationError(msg)
        if repeat_threshold < 1 or lazy_threshold < 1:
            msg = f"Thresholds must be at least 1 (repeat_threshold={repeat_threshold}, lazy={lazy_threshold})."
            raise ConfigurationError(msg)
        self.n_plus_one: NPlusOneMode = n_plus_one
        self.repeat_threshold = repeat_threshold
        self.lazy_threshold = lazy_threshold
        self.store = QueryStore() if store is None else store
        self.call_sites = call_sites
        if explain_slower_than is not None and explain_slower_than < 0:
            msg = f"explain_slower_than must be a number of seconds >= 0 or None, not {explain_slower_than!r}."
            raise ConfigurationError(msg)
        self.explain_slower_than = explain_slower_than
        self.plan_errors = 0
        self._explaining: ContextVar[bool] = ContextVar(f"overdrive_db_explaining_{id(self)}", default=False)
        self.fingerprint = Fingerprinter()
        self.sites = CallSiteFinder()
        self._current: ContextVar[QueryScope | None] = ContextVar(
            f"overdrive_db_scope_{next(_monitor_ids)}", default=None
        )
        self._engines: list[Engine] = []
        self._orm_listening = False

    # ------------------------------------------------------------------ wiring

    def instrument(self, engine: Engine | AsyncEngine) -> None:
        """Listen to `engine`'s statements (an AsyncEngine is instrumented through its ``sync_engine``)."""
        sync_engine = engine if isinstance(engine, Engine) else engine.sync_engine
        if sync_engine in self._engines:
            return
        for name, listener in self._dialect_listeners():
            event.listen(sync_engine, name, listener)
        self._engines.append(sync_engine)
        if not self._orm_listening:
            event.listen(Session, "do_orm_execute", self._on_orm_execute)
            event.listen(Mapper, "load", self._on_load)
            self._orm_listening = True

    def _dialect_listeners(self) -> list[tuple[str, Callable[..., bool]]]:
        return [
            ("do_execute", self._do_execute),
            ("do_executemany", self._do_executemany),
            ("do_execute_no_params", self._do_execute_no_params),
        ]

    def uninstrument(self) -> None:
        """Remove every listener this monitor added."""
        for engine in self._engines:
            for name, listener in self._dialect_listeners():
                event.remove(engine, name, listener)
        self._engines.clear()
        if self._orm_listening:
            event.remove(Session, "do_orm_execute", self._on_orm_execute)
            event.remove(Mapper, "load", self._on_load)
            self._orm_listening = False

    @contextmanager
    def scope(self, name: str | None = None, *, record_statements: bool = False) -> Iterator[QueryScope]:
        """Count and check the queries run inside the block (and in tasks it starts) as one unit."""
        scope = QueryScope(name=name, record_statements=record_statements)
        token = self._current.set(scope)
        try:
            yield scope
        finally:
            self._current.reset(token)
            scope._parent_of.clear()
            scope._result_rows.clear()
            scope._result_sites.clear()

    @property
    def dialect(self) -> str | None:
        """The dialect name of the first instrumented engine (``sqlite``, ``postgresql`` ...), if any."""
        return self._engines[0].dialect.name if self._engines else None

    @property
    def current(self) -> QueryScope | None:
        """The scope open in this context, if any."""
        return self._current.get()

    # ------------------------------------------------------------------ engine events (hot path)

    def _do_execute(self, cursor: Any, statement: str, parameters: Any, context: ExecutionContext) -> bool:
        started = perf_counter()
        context.dialect.do_execute(cursor, statement, parameters, context)
        if not self._explaining.get():  # our own EXPLAIN statements are neither counted nor timed
            self._record(cursor, statement, parameters, context, perf_counter() - started)
        return True

    def _do_executemany(self, cursor: Any, statement: str, parameters: Any, context: ExecutionContext) -> bool:
        started = perf_counter()
        context.dialect.do_executemany(cursor, statement, parameters, context)
        self._record(cursor, statement, parameters, context, perf_counter() - started)
        return True

    def _do_execute_no_params(self, cursor: Any, statement: str, context: ExecutionContext) -> bool:
        started = perf_counter()
        context.dialect.do_execute_no_params(cursor, statement, context)
        self._record(cursor, statement, None, context, perf_counter() - started)
        return True

    def _record(self, cursor: Any, statement: str, parameters: Any, context: ExecutionContext, elapsed: float) -> None:
        fingerprint = self.fingerprint(statement)
        stats, new = self.store.stats_for(fingerprint)
        try:
            rowcount = cursor.rowcount
        except Exception:  # noqa: BLE001 -- a driver that cannot tell; rows stay unknown
            rowcount = -1
        stats.record(elapsed, statement, parameters, rowcount if isinstance(rowcount, int) else -1)
        if new and self.call_sites:
            stats.call_site = self.sites.find(skip=2)
        threshold = self.explain_slower_than
        if threshold is not None and elapsed >= threshold and stats.plan is None and fingerprint.operation in _READS:
            self._capture_plan(stats, context, statement, parameters)
        scope = self._current.get()
        if scope is None:
            return
        scope.queries += 1
        scope.duration_s += elapsed
        seen = scope.by_fingerprint[fingerprint.id] = scope.by_fingerprint.get(fingerprint.id, 0) + 1
        if scope.record_statements:
            scope.statements.append((fingerprint.normalized, self.sites.find(skip=2)))
        lazy_key = context.execution_options.get(_LAZY_OPTION)
        if lazy_key is not None:
            lazy = scope._lazy.get(lazy_key)
            if lazy is not None:
                lazy.fingerprint = fingerprint.id
        elif seen > self.repeat_threshold and self.n_plus_one != "off" and fingerprint.operation in _READS:
            self._repeated(scope, fingerprint, seen)

    def _capture_plan(self, stats: QueryStats, context: ExecutionContext, statement: str, parameters: Any) -> None:
        from overdrive.db.plans import ExplainOptions, explain  # noqa: PLC0415 -- only when plan capture is on
        from overdrive.db.sample import QuerySample  # noqa: PLC0415

        connection = getattr(context, "root_connection", None)
        if connection is None or connection.dialect.name not in ("postgresql", "sqlite"):
            return
        token = self._explaining.set(True)
        try:
            # Plain EXPLAIN only: no ANALYZE and no SQLite step count, so the statement never runs a second time.
            options = ExplainOptions(analyze=False, measure=False)
            plan = explain(connection, QuerySample(statement, parameters), options)
        except Exception as error:  # noqa: BLE001 -- a plan is a bonus: never fail the application's query for it
            self.plan_errors += 1
            stats.plan = {"error": f"{type(error).__name__}: {error}"}
            logger.debug("EXPLAIN capture failed for %s: %s", stats.fingerprint.id, error)
        else:
            stats.plan = {
                "dialect": plan.dialect,
                "cost": plan.cost,
                "cost_unit": plan.cost_unit,
                "warnings": [{"kind": w.kind, "message": w.message, "table": w.table} for w in plan.warnings],
                "raw": plan.raw,
            }
        finally:
            self._explaining.reset(token)

    def _repeated(self, scope: QueryScope, fingerprint: Fingerprint, seen: int) -> None:
        finding = scope._repeated.get(fingerprint.id)
        if finding is not None:
            finding.count = seen
            return
        finding = NPlusOne(
            kind="repeated",
            subject=fingerprint.normalized,
            count=seen,
            call_site=self.sites.find(skip=3),
            fingerprint=fingerprint.id,
            suggestion="load the rows with one query (WHERE ... IN, a join, or overdrive.db.BatchLoader).",
        )
        scope._repeated[fingerprint.id] = finding
        self._found(scope, finding)

    # ------------------------------------------------------------------ ORM events

    def _on_load(self, target: object, context: QueryContext) -> None:
        scope = self._current.get()
        if scope is None or self.n_plus_one == "off" or len(scope._parent_of) >= _MAX_TRACKED_OBJECTS:
            return
        scope._parent_of[instance_state(target)] = context
        rows = scope._result_rows[context] = scope._result_rows.get(context, 0) + 1
        if rows == _MULTI_ROW:  # the result is multi-row: remember where the application consumed it
            scope._result_sites[context] = self.sites.find(skip=2)

    def _on_orm_execute(self, state: ORMExecuteState) -> None:
        scope = self._current.get()
        if scope is None or self.n_plus_one == "off" or not state.is_relationship_load:
            return  # is_relationship_load is False for non-SELECTs, whose load options cannot be read
        if state.lazy_loaded_from is None:
            return
        parent_result = scope._parent_of.get(state.lazy_loaded_from)
        if parent_result is None or scope._result_rows.get(parent_result, 0) < _MULTI_ROW:
            return
        path = state.loader_strategy_path
        relationship = _relationship_name(path.path if path is not None else ())
        key = (id(parent_result), relationship)
        seen = scope._lazy_seen[key] = scope._lazy_seen.get(key, 0) + 1
        finding = scope._lazy.get(key)
        if finding is not None:
            finding.count = seen
        elif seen >= self.lazy_threshold:
            attribute = relationship.rpartition(".")[2]
            finding = NPlusOne(
                kind="lazy_load",
                subject=relationship,
                count=seen,
                call_site=self.sites.find(skip=2),
                parents_site=scope._result_sites.get(parent_result),
                suggestion=(
                    f"eager-load it where the parents are queried: .options(selectinload({relationship})) "
                    f"(or joinedload for a many-to-one), or batch the '{attribute}' lookups with "
                    "overdrive.db.BatchLoader."
                ),
            )
            scope._lazy[key] = finding
            self._found(scope, finding)
        state.update_execution_options(**{_LAZY_OPTION: key})

    def _found(self, scope: QueryScope, finding: NPlusOne) -> None:
        scope.findings.append(finding)
        mode = self.n_plus_one
        if mode == "log":
            logger.warning("%s", finding.describe())
        elif mode == "warn":
            warnings.warn(finding.describe(), NPlusOneWarning, stacklevel=2)
        elif mode == "raise":
            raise NPlusOneError(finding.describe(), finding)


def _relationship_name(path: tuple[Any, ...]) -> str:
    """``Class.attribute`` for the last relationship of a loader path."""
    if len(path) >= 2:  # noqa: PLR2004 -- (mapper, property) pairs
        mapper, prop = path[-2], path[-1]
        owner: Callable[..., Any] | None = getattr(mapper, "class_", None)
        if owner is not None and hasattr(prop, "key"):
            return f"{owner.__name__}.{prop.key}"
    return "(relationship)"
