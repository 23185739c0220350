"""Opt-in OpenTelemetry tracing for an ASGI app: one server span per request, sampled, named by route template.

    provider = tracer_provider(service_name="shop", sample_ratio=0.05, exporter=OTLPSpanExporter())
    app = traced(app, provider)

`traced` wraps the app in OpenTelemetry's own ASGI middleware with its per-message ``receive``/``send`` sub-spans
turned off (they add two spans per request and say little), and names each server span ``<METHOD> <route>`` with
``http.route`` set, once routing has matched (a raw path would make one span name per URL). `tracer_provider`
builds a provider with a parent-based ratio sampler: a request that arrives with a sampled ``traceparent`` is
traced whatever the ratio, others with probability `sample_ratio`. Nothing here touches OpenTelemetry's global
provider. `add_trace_ids` is a structlog processor that puts the current trace and span ids into every log line;
`sampled_trace_id` is the trace id getter for metrics exemplars (``ObservabilityMiddleware(exemplars=...)``).

Needs the ``tracing`` extra: ``pip install overdrive[tracing]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from overdrive.exceptions import ConfigurationError
from overdrive.observability.metrics import UNMATCHED_ROUTE
from overdrive.observability.middleware import route_template

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from opentelemetry.sdk.trace.export import SpanExporter

    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["add_trace_ids", "sampled_trace_id", "traced", "tracer_provider"]

_SAMPLED = trace.TraceFlags.SAMPLED


def tracer_provider(
    *,
    service_name: str,
    sample_ratio: float = 0.1,
    exporter: SpanExporter | None = None,
    batch: bool = True,
) -> TracerProvider:
    """A tracer provider sampling `sample_ratio` of new traces (and every trace a sampled caller started).

    Args:
        service_name: the ``service.name`` resource attribute.
        sample_ratio: the share of root requests traced, 0..1.
        exporter: where finished spans go; with none, spans are sampled and timed but not exported.
        batch: export in batches from a background thread (production); False exports each span as it ends.

    Raises:
        ConfigurationError: a ratio outside 0..1 or an empty service name.

    """
    if not 0.0 <= sample_ratio <= 1.0:
        msg = f"sample_ratio must lie in [0, 1], not {sample_ratio!r}."
        raise ConfigurationError(msg)
    if not service_name:
        msg = "A tracer provider needs a service_name."
        raise ConfigurationError(msg)
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource.create({"service.name": service_name}),
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return provider


class _RouteNamer:
    """Inside the OpenTelemetry middleware: renames the current server span after the matched route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()
        if not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def named_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = route_template(scope)
                if route == UNMATCHED_ROUTE:  # the bare method, never the raw path (one name per URL)
                    span.update_name(scope["method"])
                else:
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
            await send(message)

        await self.app(scope, receive, named_send)


def traced(app: ASGIApp, provider: TracerProvider, *, excluded_urls: str | None = None) -> ASGIApp:
    """`app` with a server span per request (no receive/send sub-spans), named ``<METHOD> <route template>``.

    Args:
        app: the ASGI application.
        provider: from `tracer_provider` (or any SDK provider).
        excluded_urls: comma-separated regexes of URLs not to trace, e.g. ``"/healthz,/metrics"``.

    """
    middleware: ASGIApp = OpenTelemetryMiddleware(
        _RouteNamer(app),
        excluded_urls=excluded_urls,
        tracer_provider=provider,
        exclude_spans=["receive", "send"],
    )
    return middleware


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: add ``trace_id`` and ``span_id`` (hex) while a sampled span is current."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def sampled_trace_id() -> str | None:
    """The current span's trace id (32 hex digits) if its trace is sampled, else None: the getter for exemplars."""
    context = trace.get_current_span().get_span_context()
    # The flag bit first, and not through the `sampled` property: this runs once per request.
    if context.trace_flags & _SAMPLED and context.is_valid:
        return format(context.trace_id, "032x")
    return None
