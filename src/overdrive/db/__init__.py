"""Find and fix database bottlenecks in SQLAlchemy 2 apps.

- `QueryMonitor` / `QueryScopeMiddleware`: per-request query counts and time, N+1 detection with call sites,
  statement fingerprints with per-fingerprint statistics (`QueryStore`).
- `PoolMonitor` / `pool_size_hint`: connection-pool use, wait times and sizing advice.
- `Paginator` / `paginate`: keyset pagination by a statement's ORDER BY, with signed cursors.
- `BatchLoader` / `model_loader`: DataLoader-style batching of lookups into one IN query.
- `explain`: a captured statement's plan, cost and warnings (sequential scans, sorts, deep offsets).
- `advise`: indexes that make captured statements cheaper, each verified (HypoPG on PostgreSQL).
"""

from overdrive.db.advisor import IndexAdvice, IndexCandidate, IndexColumn, QueryGain, advise
from overdrive.db.explain import ExplainOptions, Plan, PlanWarning, explain
from overdrive.db.fingerprint import Fingerprint, Fingerprinter, normalize
from overdrive.db.keyset import Page, Paginator, paginate, paginate_sync
from overdrive.db.loader import BatchLoader, model_loader
from overdrive.db.middleware import QueryScopeMiddleware
from overdrive.db.monitor import NPlusOne, NPlusOneMode, QueryMonitor, QueryScope
from overdrive.db.pool import PoolMonitor, PoolSizeHint, PoolStats, pool_size_hint
from overdrive.db.querystats import QueryStats, QueryStore, StatsSnapshot
from overdrive.db.sample import QuerySample

__all__ = [
    "BatchLoader",
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
    "StatsSnapshot",
    "advise",
    "explain",
    "model_loader",
    "normalize",
    "paginate",
    "paginate_sync",
    "pool_size_hint",
]
