"""Per-route request and SQL statement counts for the demo report.

The demo runner reads these after a load run to show "DB queries per request" for each endpoint. The tally for the
request in flight lives in a ContextVar; SQLAlchemy runs driver calls in a greenlet that shares the task's
context, so the engine event sees it. This is the demo's own yardstick; the database step brings the full
instrumentation.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from starlette.routing import Match

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.routing import Router

    from overdrive.types import ASGIApp, Receive, Scope, Send

__all__ = ["RouteStats", "RouteStatsMiddleware", "count_queries"]

_UNMATCHED = "(unmatched)"
_OWN_PREFIX = "/_demo/"  # the stats endpoints themselves are not counted


class _Tally:
    __slots__ = ("queries",)

    def __init__(self) -> None:
        self.queries = 0


_current: ContextVar[_Tally | None] = ContextVar("overdrive_demo_tally", default=None)


@dataclass
class RouteStats:
    """Requests and SQL statements seen per route template since the last reset."""

    requests: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)

    def record(self, route: str, queries: int) -> None:
        """Add one finished request on `route` that ran `queries` statements."""
        self.requests[route] = self.requests.get(route, 0) + 1
        self.queries[route] = self.queries.get(route, 0) + queries

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.requests.clear()
        self.queries.clear()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts per route, as plain JSON-ready data."""
        return {
            route: {"requests": count, "queries": self.queries.get(route, 0)}
            for route, count in sorted(self.requests.items())
        }


def count_queries(engine: AsyncEngine) -> None:
    """Count every statement `engine` executes against the request in flight (if any)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        tally = _current.get()
        # SQLite's explicit BEGIN goes through the cursor; PostgreSQL's does not. Count neither, to compare.
        if tally is not None and not statement.startswith("BEGIN"):
            tally.queries += 1


class RouteStatsMiddleware:
    """Pure ASGI middleware that records each HTTP request's route template and statement count.

    A request answered before routing (by a cache in front of the app) has no route in its scope; `router` then
    names its route template, so cache hits count as requests of their route with no statements.
    """

    def __init__(self, app: ASGIApp, *, stats: RouteStats, router: Router | None = None) -> None:
        self.app = app
        self.stats = stats
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a fresh statement tally for this request, then record it under its route."""
        if scope["type"] != "http" or scope["path"].startswith(_OWN_PREFIX):
            await self.app(scope, receive, send)
            return
        tally = _Tally()
        token = _current.set(tally)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
            route = scope.get("route") or self._match(scope)
            self.stats.record(getattr(route, "path", _UNMATCHED), tally.queries)

    def _match(self, scope: Scope) -> object:
        if self.router is None:
            return None
        return next((r for r in self.router.routes if r.matches(scope)[0] is Match.FULL), None)
