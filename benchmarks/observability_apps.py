"""Apps for `benchmarks/observability.py`: hello world bare, with Overdrive's middleware, and with peers.

The two "stack" apps add an access log to the metrics: Overdrive's `instrument_app` (metrics, request id,
Server-Timing, a JSON access line per request written off the event loop) and starlette_exporter with the access
log most apps write, one JSON line per request through the stdlib `logging` module to a file. Both log to the
file named by ``OVERDRIVE_BENCH_LOG`` (default ``/tmp/observability-bench-<app>.log``).

Two more run Overdrive's two middleware apps on the Python reference path (``compiled=False``), for
`benchmarks/observability_cpu.py` to show what the compiled path saves.

Every app serves `GET /` with `PlainTextResponse("hello")`. Granian imports them as
`benchmarks.observability_apps:NAME`. The peer libraries (starlette_exporter, prometheus-fastapi-instrumentator)
are imported lazily inside their factories, so the bare and Overdrive apps import without them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.observability import (
    AccessLog,
    ObservabilityMiddleware,
    RequestMetrics,
    configure_logging,
    instrument_app,
)
from overdrive.observability.logs import active_logs

if TYPE_CHECKING:
    from starlette.requests import Request

    from overdrive.types import ASGIApp, Message, Receive, Scope, Send


def _log_path(app: str) -> str:
    return os.environ.get("OVERDRIVE_BENCH_LOG", f"/tmp/observability-bench-{app}.log")


async def hello(request: Request) -> PlainTextResponse:  # noqa: ARG001
    """The one route of every app."""
    return PlainTextResponse("hello")


def _starlette(middleware: list[Middleware] | None = None) -> Starlette:
    return Starlette(routes=[Route("/", hello)], middleware=middleware)


async def fastapi_hello() -> PlainTextResponse:
    """The one route of the FastAPI apps (no parameters: nothing for FastAPI to resolve)."""
    return PlainTextResponse("hello")


def _fastapi() -> FastAPI:
    app = FastAPI()
    app.add_api_route("/", fastapi_hello, methods=["GET"], response_class=PlainTextResponse)
    return app


def starlette_bare() -> Starlette:
    """1. Bare Starlette hello world."""
    return _starlette()


def starlette_overdrive() -> Starlette:
    """2. Starlette with Overdrive's ObservabilityMiddleware (RED metrics, request id, Server-Timing)."""
    return _starlette([Middleware(ObservabilityMiddleware, metrics=RequestMetrics())])


def starlette_exporter() -> Starlette:
    """3. Starlette with starlette_exporter's PrometheusMiddleware and its /metrics route."""
    from starlette_exporter import PrometheusMiddleware, handle_metrics  # noqa: PLC0415

    app = _starlette([Middleware(PrometheusMiddleware)])
    app.add_route("/metrics", handle_metrics)
    return app


def fastapi_bare() -> FastAPI:
    """4. Bare FastAPI hello world."""
    return _fastapi()


def fastapi_instrumentator() -> FastAPI:
    """5. FastAPI with prometheus-fastapi-instrumentator (`Instrumentator().instrument(app).expose(app)`)."""
    from prometheus_fastapi_instrumentator import Instrumentator  # noqa: PLC0415

    app = _fastapi()
    Instrumentator().instrument(app).expose(app)
    return app


def fastapi_overdrive() -> FastAPI:
    """6. FastAPI with Overdrive's ObservabilityMiddleware."""
    app = _fastapi()
    app.add_middleware(ObservabilityMiddleware, metrics=RequestMetrics())
    return app


def starlette_stack() -> Starlette:
    """7. Starlette with Overdrive's whole stack: `instrument_app` (metrics, request id, Server-Timing, access log)."""
    app = _starlette()
    instrument_app(app, metrics=RequestMetrics(), logs=configure_logging(_log_path("starlette_stack")))
    return app


class _StdlibAccessLog:
    """The access log most apps write: one JSON line per request through stdlib `logging`, on the event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = logging.getLogger("bench.access")
        handler = logging.FileHandler(_log_path("starlette_exporter_logged"))
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def logged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            line = {"method": scope["method"], "path": scope["path"], "status": status}
            line["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.logger.info(json.dumps(line))


def starlette_exporter_logged() -> Starlette:
    """8. starlette_exporter plus a stdlib-logging JSON access line per request (the peer with the same logging)."""
    from starlette_exporter import PrometheusMiddleware, handle_metrics  # noqa: PLC0415

    app = _starlette([Middleware(_StdlibAccessLog), Middleware(PrometheusMiddleware)])
    app.add_route("/metrics", handle_metrics)
    return app


class _Passthrough:
    """The least any pure ASGI middleware that sees the response does: wrap `send` and note the status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, noting_send)


def starlette_passthrough() -> Starlette:
    """9. Starlette with a do-nothing send-wrapping middleware: the floor of any middleware that sees responses."""
    return _starlette([Middleware(_Passthrough)])


def starlette_overdrive_python() -> Starlette:
    """11. `starlette_overdrive` on the Python reference path (``compiled=False``): what the C extension saves."""
    return _starlette([Middleware(ObservabilityMiddleware, metrics=RequestMetrics(), compiled=False)])


def starlette_stack_python() -> Starlette:
    """12. `starlette_stack` on the Python reference path: `ObservabilityMiddleware(compiled=False)` with the log.

    Shares the active logging configuration if there is one: configuring again would close the other stack's logs
    when both run in one process (`benchmarks/observability_cpu.py`).
    """
    logs = active_logs() or configure_logging(_log_path("starlette_stack_python"))
    access = AccessLog(logs=logs)
    return _starlette(
        [Middleware(ObservabilityMiddleware, metrics=RequestMetrics(), access_log=access, logs=logs, compiled=False)]
    )


def fastapi_passthrough() -> FastAPI:
    """10. FastAPI with the same do-nothing send-wrapping middleware: the floor on FastAPI."""
    app = _fastapi()
    app.add_middleware(_Passthrough)
    return app
