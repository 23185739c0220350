"""`instrument_app`: the standard observability stack on an app in one line.

Order, outermost first: `ObservabilityMiddleware` (metrics, request id, Server-Timing, access log and log context,
and closing the logs at lifespan shutdown), so it times and counts everything inside it; then the
`inner` middleware (the place for the HTTP cache and compression, whose cost should show in the metrics); then
the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from overdrive.exceptions import ConfigurationError
from overdrive.observability.access import AccessLog
from overdrive.observability.logs import StructuredLogs, active_logs, configure_logging
from overdrive.observability.metrics import RequestMetrics
from overdrive.observability.middleware import ObservabilityMiddleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from overdrive.types import ASGIApp

__all__ = ["Middleware", "instrument_app"]

Middleware = tuple[type[Any], dict[str, Any]]
"""A middleware class and its keyword options, as Starlette's ``Middleware(cls, **options)`` holds them."""


class _MiddlewareHost(Protocol):
    """An app that takes middleware itself (Starlette, FastAPI)."""

    def add_middleware(self, middleware_class: Any, /, *args: Any, **kwargs: Any) -> None: ...


Host = TypeVar("Host", bound=_MiddlewareHost)


@overload
def instrument_app(
    app: Host,
    *,
    metrics: RequestMetrics | None = ...,
    logs: StructuredLogs | None = ...,
    access_log: bool = ...,
    server_timing: bool = ...,
    metrics_path: str | None = ...,
    trust_request_id: bool = ...,
    inner: Sequence[Middleware] = ...,
    exemplars: bool = ...,
) -> Host: ...


@overload
def instrument_app(
    app: Callable[..., Awaitable[None]],
    *,
    metrics: RequestMetrics | None = ...,
    logs: StructuredLogs | None = ...,
    access_log: bool = ...,
    server_timing: bool = ...,
    metrics_path: str | None = ...,
    trust_request_id: bool = ...,
    inner: Sequence[Middleware] = ...,
    exemplars: bool = ...,
) -> ASGIApp: ...


def instrument_app(
    app: Any,
    *,
    metrics: RequestMetrics | None = None,
    logs: StructuredLogs | None = None,
    access_log: bool = True,
    server_timing: bool = True,
    metrics_path: str | None = "/metrics",
    trust_request_id: bool = True,
    inner: Sequence[Middleware] = (),
    exemplars: bool = False,
) -> Any:
    """Add metrics, request ids, Server-Timing and the access log to an ASGI app, with safe defaults.

    A Starlette or FastAPI app is instrumented in place (through ``add_middleware``, before it serves) and
    returned; any other ASGI app (Litestar, a bare callable) is returned wrapped: serve the returned object.

    Args:
        app: the ASGI application.
        metrics: the registry to record into; a new one by default.
        logs: the logs the lifespan hook closes on shutdown; by default the active `configure_logging`
            configuration, else (only if `access_log` is on) a new one writing JSON lines to stdout.
        access_log: write one line per request and bind the request's log context.
        server_timing: add ``Server-Timing: app;dur=<ms>``.
        metrics_path: where the Prometheus exposition is served (None: nowhere).
        trust_request_id: keep a well-formed incoming ``X-Request-ID``.
        inner: middleware run inside the observability layer (first listed is outermost); the extension point
            for the HTTP cache and compression.
        exemplars: attach each sampled request's OpenTelemetry trace id to its duration bucket, shown to scrapers
            that accept OpenMetrics (Prometheus with ``--enable-feature=exemplar-storage``). Serve
            ``traced(<the returned app>, provider)`` so a span is current; needs the ``tracing`` extra.

    Returns:
        The app to serve: `app` itself when it was instrumented in place.

    Raises:
        ConfigurationError: `exemplars` without the ``tracing`` extra installed.

    """
    if logs is None and access_log:
        logs = active_logs() or configure_logging()
    options = {
        "metrics": metrics if metrics is not None else RequestMetrics(),
        "metrics_path": metrics_path,
        "server_timing": server_timing,
        "trust_request_id": trust_request_id,
        "access_log": AccessLog(logs=logs) if access_log else None,
        # Starlette/FastAPI: the live route list, to name responses the router never saw (cache hits).
        "routes": getattr(getattr(app, "router", None), "routes", None),
        "logs": logs,  # closed (so flushed) at lifespan shutdown by the same layer: no extra hop per request
        "exemplars": _trace_id_getter() if exemplars else None,
    }
    stack: list[Middleware] = [(ObservabilityMiddleware, options)]
    stack.extend(inner)
    add_middleware: Callable[..., None] | None = getattr(app, "add_middleware", None)
    if add_middleware is not None:
        for cls, kwargs in reversed(stack):  # each call wraps the previous ones
            add_middleware(cls, **kwargs)
        return app
    for cls, kwargs in reversed(stack):
        app = cls(app, **kwargs)
    return app


def _trace_id_getter() -> Callable[[], str | None]:
    try:
        from overdrive.observability.tracing import sampled_trace_id  # noqa: PLC0415 -- an optional extra
    except ImportError as exc:
        msg = "Exemplars need OpenTelemetry: pip install overdrive[tracing]."
        raise ConfigurationError(msg) from exc
    return sampled_trace_id
