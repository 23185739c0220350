"""`QueryScopeMiddleware`: one query scope per HTTP request, reported in ``Server-Timing``.

    app = QueryScopeMiddleware(app, monitor)

Each request runs inside `monitor.scope(name=<method> <path>)`, so the monitor counts its queries and checks them
for N+1 patterns; the response gets ``Server-Timing: db;dur=<ms>;desc="<n> queries"`` (the queries run before the
response started: for streamed bodies, the ones before the first byte). Pure ASGI: other scope types pass through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overdrive.db.monitor import QueryMonitor, QueryScope
    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["QueryScopeMiddleware"]


class _Responder:
    __slots__ = ("scope", "send")

    def __init__(self, scope: QueryScope, send: Send) -> None:
        self.scope = scope
        self.send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers")
            if not isinstance(headers, list):
                headers = message["headers"] = list(headers or ())
            scope = self.scope
            headers.append(
                (b"server-timing", b'db;dur=%.2f;desc="%d queries"' % (scope.duration_s * 1000, scope.queries))
            )
        await self.send(message)


class QueryScopeMiddleware:
    """Opens a query scope per HTTP request and reports the request's database time.

    Args:
        app: the ASGI application.
        monitor: the `QueryMonitor` the app's engines are instrumented with.
        server_timing: add the ``db`` entry to ``Server-Timing``.

    """

    def __init__(self, app: ASGIApp, monitor: QueryMonitor, *, server_timing: bool = True) -> None:
        self.app = app
        self.monitor = monitor
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside a query scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.monitor.scope(f"{scope['method']} {scope['path']}") as query_scope:
            await self.app(scope, receive, _Responder(query_scope, send) if self.server_timing else send)
