"""Apps for `benchmarks/observability.py`: hello world bare, with Overdrive's middleware, and with peers.

Every app serves `GET /` with `PlainTextResponse("hello")`. Granian imports them as
`benchmarks.observability_apps:NAME`. The peer libraries (starlette_exporter, prometheus-fastapi-instrumentator)
are imported lazily inside their factories, so the bare and Overdrive apps import without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.observability import ObservabilityMiddleware, RequestMetrics

if TYPE_CHECKING:
    from starlette.requests import Request


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
