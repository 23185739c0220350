"""The app the Prometheus exemplar test serves: exemplars on, traces sampled only when a caller's traceparent is.

The metrics directory comes from OVERDRIVE_METRICS_DIR, so with ``--workers 2`` exemplars go through the snapshots.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.observability import instrument_app
from overdrive.observability.tracing import traced, tracer_provider


async def _item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


_provider = tracer_provider(service_name="exemplar-test", sample_ratio=0.0)
_instrumented = instrument_app(Starlette(routes=[Route("/items/{item_id}", _item)]), access_log=False, exemplars=True)
app = traced(_instrumented, _provider, excluded_urls="/metrics")
