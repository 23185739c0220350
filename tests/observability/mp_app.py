"""The app the server tests run with ``--workers 2``; the metrics directory comes from OVERDRIVE_METRICS_DIR."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.observability import ObservabilityMiddleware, RequestMetrics


async def _pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = ObservabilityMiddleware(Starlette(routes=[Route("/pid", _pid)]), metrics=RequestMetrics())
