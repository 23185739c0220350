"""`QueryScopeMiddleware`: one query scope per HTTP request, reported in ``Server-Timing``.

    app = QueryScopeMiddleware(app, monitor, report_path="/_overdrive/db")

Each request runs inside `monitor.scope(name=<method> <path>)`, so the monitor counts its queries and checks them
for N+1 patterns; the response gets ``Server-Timing: db;dur=<ms>;desc="<n> queries"`` (the queries run before the
response started: for streamed bodies, the ones before the first byte). Pure ASGI: other scope types pass through.

With `report_path` set, ``GET <report_path>`` answers the monitor's slow-query report as JSON
(``overdrive.db.report/1``, what ``overdrive db report URL`` reads) to loopback clients only, since it shows SQL
and example parameters; anyone else gets a 403.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import orjson

from overdrive.db.report import QueryReport

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

    def __init__(
        self, app: ASGIApp, monitor: QueryMonitor, *, server_timing: bool = True, report_path: str | None = None
    ) -> None:
        self.app = app
        self.monitor = monitor
        self.server_timing = server_timing
        self.report_path = report_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside a query scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.report_path is not None and scope["path"] == self.report_path:
            await self._report(scope, send)
            return
        with self.monitor.scope(f"{scope['method']} {scope['path']}") as query_scope:
            await self.app(scope, receive, _Responder(query_scope, send) if self.server_timing else send)

    async def _report(self, scope: Scope, send: Send) -> None:
        client = scope.get("client")
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b'{"error": "use GET"}'
        elif not client or not _is_loopback(client[0]):
            status, body = 403, b'{"error": "the query report is served to loopback clients only"}'
        else:
            report = QueryReport.from_store(self.monitor.store, dialect=self.monitor.dialect)
            status, body = 200, orjson.dumps(report.to_json())
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
