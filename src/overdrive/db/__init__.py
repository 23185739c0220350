"""Find and fix database bottlenecks in SQLAlchemy 2 apps.

- `QueryMonitor` / `QueryScopeMiddleware`: per-request query counts and time, N+1 detection with call sites,
  statement fingerprints with per-fingerprint statistics (`QueryStore`).
- `PoolMonitor` / `pool_size_hint`: connection-pool use, wait times and sizing advice.
- `Paginator` / `paginate`: keyset pagination by a statement's ORDER BY, with signed cursors.
- `BatchLoader` / `model_loader`: DataLoader-style batching of lookups into one IN query.
- `explain`: a captured statement's plan, cost and warnings (sequential scans, sorts, deep offsets).
- `advise`: indexes that make captured statements cheaper, each verified (HypoPG on PostgreSQL).
- `ReplicaRouter` / `ReadYourWritesMiddleware`: reads on streaming replicas, writes on the primary, and every client
  reading its own writes.

Names load on first use (PEP 562), so `overdrive.db.cli` and the pure-Python report can be imported where
SQLAlchemy is not installed (it comes with the ``demo`` extra); type checkers see ordinary imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overdrive._lazy import lazy_names

if TYPE_CHECKING:
    from overdrive.db.advisor import IndexAdvice, IndexCandidate, IndexColumn, QueryGain, advise
    from overdrive.db.consistency import ReadYourWritesMiddleware
    from overdrive.db.fingerprint import Fingerprint, Fingerprinter, normalize
    from overdrive.db.keyset import Page, Paginator, paginate, paginate_sync
    from overdrive.db.loader import BatchLoader, model_loader
    from overdrive.db.middleware import QueryScopeMiddleware
    from overdrive.db.monitor import NPlusOne, NPlusOneMode, QueryMonitor, QueryScope
    from overdrive.db.plans import ExplainOptions, Plan, PlanWarning, explain
    from overdrive.db.pool import PoolMonitor, PoolSizeHint, PoolStats, pool_size_hint
    from overdrive.db.querystats import QueryStats, QueryStore, StatsSnapshot
    from overdrive.db.replicas import ConsistencyScope, ReplicaRouter, ReplicaStatus, RoutedSession
    from overdrive.db.sample import QuerySample

__all__ = [
    "BatchLoader",
    "ConsistencyScope",
    "ExplainOptions",
    "Fingerprint",
    "Fingerprinter",
    "IndexAdvice",
    "IndexCandidate",
    "IndexColumn",
    "NPlusOne",
    "NPlusOneMode",
    "Page",
    "Paginator",
    "Plan",
    "PlanWarning",
    "PoolMonitor",
    "PoolSizeHint",
    "PoolStats",
    "QueryGain",
    "QueryMonitor",
    "QuerySample",
    "QueryScope",
    "QueryScopeMiddleware",
    "QueryStats",
    "QueryStore",
    "ReadYourWritesMiddleware",
    "ReplicaRouter",
    "ReplicaStatus",
    "RoutedSession",
    "StatsSnapshot",
    "advise",
    "explain",
    "model_loader",
    "normalize",
    "paginate",
    "paginate_sync",
    "pool_size_hint",
]

_HOMES = {
    "BatchLoader": "overdrive.db.loader",
    "ConsistencyScope": "overdrive.db.replicas",
    "ExplainOptions": "overdrive.db.plans",
    "Fingerprint": "overdrive.db.fingerprint",
    "Fingerprinter": "overdrive.db.fingerprint",
    "IndexAdvice": "overdrive.db.advisor",
    "IndexCandidate": "overdrive.db.advisor",
    "IndexColumn": "overdrive.db.advisor",
    "NPlusOne": "overdrive.db.monitor",
    "NPlusOneMode": "overdrive.db.monitor",
    "Page": "overdrive.db.keyset",
    "Paginator": "overdrive.db.keyset",
    "Plan": "overdrive.db.plans",
    "PlanWarning": "overdrive.db.plans",
    "PoolMonitor": "overdrive.db.pool",
    "PoolSizeHint": "overdrive.db.pool",
    "PoolStats": "overdrive.db.pool",
    "QueryGain": "overdrive.db.advisor",
    "QueryMonitor": "overdrive.db.monitor",
    "QuerySample": "overdrive.db.sample",
    "QueryScope": "overdrive.db.monitor",
    "QueryScopeMiddleware": "overdrive.db.middleware",
    "QueryStats": "overdrive.db.querystats",
    "QueryStore": "overdrive.db.querystats",
    "ReadYourWritesMiddleware": "overdrive.db.consistency",
    "ReplicaRouter": "overdrive.db.replicas",
    "ReplicaStatus": "overdrive.db.replicas",
    "RoutedSession": "overdrive.db.replicas",
    "StatsSnapshot": "overdrive.db.querystats",
    "advise": "overdrive.db.advisor",
    "explain": "overdrive.db.plans",
    "model_loader": "overdrive.db.loader",
    "normalize": "overdrive.db.fingerprint",
    "paginate": "overdrive.db.keyset",
    "paginate_sync": "overdrive.db.keyset",
    "pool_size_hint": "overdrive.db.pool",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
