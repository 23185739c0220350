"""Pure ASGI middleware: RED metrics per route template, request IDs, Server-Timing and the access log.

One class, `ObservabilityMiddleware`, does these jobs in one pass, because each needs the same two moments
(request start, response start) and wrapping one middleware per job would pay for a `send` wrapper each per
request; the request id and route template are computed once and shared by all of them.
Per-request state lives in a small responder object, never on the middleware.

The per-request work runs compiled (`_speedups.c`) where the extension was built, and in Python otherwise;
`ObservabilityMiddleware._timed` is the reference the compiled path follows line by line, and the tests run both.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import weakref
from functools import partial
from logging import INFO
from time import perf_counter
from typing import TYPE_CHECKING, Any

from overdrive.observability import _openmetrics
from overdrive.observability.context import REQUEST
from overdrive.observability.metrics import UNMATCHED_ROUTE, RequestMetrics

try:
    from overdrive.observability import _speedups
except ImportError:  # built without a C compiler: the Python path does the same work, slower
    _speedups = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from overdrive.observability.access import AccessLog
    from overdrive.observability.logs import StructuredLogs
    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "ObservabilityMiddleware", "route_template"]

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def route_template(scope: Scope) -> str:
    """The matched route's template (from Starlette's and FastAPI's route, or Litestar's), or ``(unmatched)``."""
    route: Any = scope.get("route")
    if route is None:
        template = scope.get("path_template")  # Litestar
        return template if isinstance(template, str) else UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


def match_route(routes: Sequence[Any], scope: Scope) -> str:
    """The template of the first Starlette route in `routes` that fully matches `scope`, or ``(unmatched)``.

    For responses the app's router never saw: an answer from a cache in front of it, or from middleware that
    copied the scope before routing. Costs a regex match per route, so it runs only when the scope has no route.
    """
    from starlette.routing import Match  # noqa: PLC0415 -- Starlette apps only, and only on this slow path

    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        found, _ = matches(scope)
        if found is Match.FULL:
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            if isinstance(template, str):
                return template
    return UNMATCHED_ROUTE


_GENERATORS: weakref.WeakSet[random.Random] = weakref.WeakSet()
"""The request id generators alive in this process, reseeded in a forked child (one hook for all of them)."""


def _reseed_generators() -> None:
    for generator in list(_GENERATORS):
        generator.seed(os.urandom(16))


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reseed_generators)


def _id_source() -> Callable[[], bytes]:
    """A maker of 16-hex-digit request ids: a PRNG seeded once from the OS, not a getrandom syscall per request.

    Ids must be unique and unguessable enough to correlate logs, not secret, so a seeded Mersenne Twister will do.
    It is seeded again in a forked child, so pre-forked workers do not repeat each other's ids.
    (A plain function: a callable object's ``__call__`` would cost twice as much per id.)
    """
    generator = random.Random(os.urandom(16))
    _GENERATORS.add(generator)
    bits = generator.getrandbits

    def new_id() -> bytes:
        return b"%016x" % bits(64)

    return new_id


def _plain_registry(metrics: RequestMetrics) -> bool:
    """Whether `metrics` counts as `RequestMetrics` does, which the compiled path does in its place."""
    kind = type(metrics)
    same_counting = all(
        getattr(kind, name) is getattr(RequestMetrics, name) for name in ("started", "finished", "new_series")
    )
    return same_counting and type(metrics.methods) is frozenset and type(metrics.status_classes) is dict


class ObservabilityMiddleware:
    """Records RED metrics, tags each request with an id, and reports its time in Server-Timing.

    Args:
        app: the ASGI application.
        metrics: the registry to record into (share one per process).
        metrics_path: where the Prometheus exposition is served (None: not served by this middleware).
        server_timing: add ``Server-Timing: app;dur=<ms>`` to responses.
        trust_request_id: accept a well-formed incoming ``X-Request-ID`` (1-128 of ``A-Za-z0-9._:-``) instead of
            generating one; a malformed one is replaced, never echoed.
        access_log: write one access line per request and bind the request's log context (request id, method,
            path, route) for every line logged while it runs; see `overdrive.observability.logs`.
        routes: the app's route list (Starlette/FastAPI ``app.router.routes``), used to name the route of a response
            the router never saw, such as a cache hit; without it those count as ``(unmatched)``.
        logs: logs to close (and so flush, for a bounded time) when the server shuts the app down (ASGI lifespan),
            as `FlushLogsOnShutdown` would, without a middleware layer of its own on every request.
        exemplars: returns the current request's trace id if its trace is sampled, else None (such as
            `overdrive.observability.tracing.sampled_trace_id`, with `traced` around this middleware); each sampled
            request then becomes its bucket's exemplar, shown to scrapers that accept OpenMetrics.
        compiled: run the per-request work in the compiled extension when it is installed (the default); False
            runs the Python reference path. The options above, and the access log's logger name and level for
            server errors, are read once, here; a `RequestMetrics` subclass that counts differently (its own
            ``started``, ``finished`` or ``new_series``) runs the Python path. On the compiled path the app's
            ``send`` does its work (status, headers) when called rather than when awaited.

    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RequestMetrics,
        metrics_path: str | None = "/metrics",
        server_timing: bool = True,
        trust_request_id: bool = True,
        access_log: AccessLog | None = None,
        routes: Sequence[Any] | None = None,
        logs: StructuredLogs | None = None,
        exemplars: Callable[[], str | None] | None = None,
        compiled: bool = True,
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.metrics_path = metrics_path
        self.server_timing = server_timing
        self.trust_request_id = trust_request_id
        self.access_log = access_log
        self.logs = logs
        self.exemplars = exemplars
        self._hot: _speedups.Hot | None = None
        if compiled and _plain_registry(metrics) and _speedups is not None:  # None where it was not built
            self._hot = self._compiled()  # makes its own request ids
        else:
            self._new_id = _id_source()

    @property
    def compiled(self) -> bool:
        """Whether requests run through the compiled extension."""
        return self._hot is not None

    def _compiled(self) -> _speedups.Hot:
        metrics, access = self.metrics, self.access_log
        return _speedups.Hot(
            in_flight=metrics.in_flight,
            series=metrics.series,
            status_classes=metrics.status_classes,
            methods=metrics.methods,
            new_series=metrics.new_series,
            route_of=self.route_of,
            buckets=metrics.buckets,
            server_timing=self.server_timing,
            trust_request_id=self.trust_request_id,
            seed=int.from_bytes(os.urandom(8), "little"),
            request_var=REQUEST,
            access=access,
            info_level=INFO,
            error_level=access.error_level if access is not None else INFO,
            exemplars=self.exemplars,
            exemplar=metrics.exemplar,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the exposition, or run the app with timing, counting and a request id."""
        if scope["type"] != "http" or scope["path"] == self.metrics_path:
            await self._not_timed(scope, receive, send)
            return
        hot = self._hot
        if hot is None:
            await self._timed(scope, receive, send)
            return
        request = hot.begin(scope, send)
        error: Exception | None = None
        try:
            await self.app(scope, receive, request)
        except Exception as exc:
            error = exc
            raise
        finally:
            request.end(error)

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0912, PLR0915 -- one hot function
        """The request with timing, counting and a request id, in Python: the reference for `_speedups.c`."""
        # The hot path: everything below runs once per request, so it is written for speed (locals, one closure).
        started = perf_counter()
        raw_id = None
        if self.trust_request_id:  # inlined: a method call costs as much as the scan
            for name, value in scope["headers"]:
                if name == REQUEST_ID_HEADER:
                    if _VALID_ID.fullmatch(value):  # a malformed id is replaced, never echoed
                        raw_id = value
                    break
        if raw_id is None:
            raw_id = self._new_id()
        request_id = raw_id.decode()
        if "state" in scope:
            scope["state"]["request_id"] = request_id
        else:
            scope["state"] = {"request_id": request_id}
        status, sent, server_timing = 500, 0, self.server_timing

        async def respond(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                # The message is ours to amend (the app built it for this call); copy headers only if not a list.
                headers = message.get("headers")
                if type(headers) is not list:
                    headers = message["headers"] = list(headers or ())
                headers.append((REQUEST_ID_HEADER, raw_id))
                if server_timing:
                    elapsed_ms = (perf_counter() - started) * 1000
                    headers.append((b"server-timing", ("app;dur=%.2f" % elapsed_ms).encode()))  # noqa: UP031 -- fastest
            await send(message)

        metrics = self.metrics
        method = metrics.started(scope["method"])
        access = self.access_log
        log_scope = access.start(scope, request_id, self.route_of) if access is not None else None
        error: Exception | None = None
        try:
            await self.app(scope, receive, respond)
        except Exception as exc:
            error = exc
            raise
        finally:
            try:
                route, seconds = self.route_of(scope), perf_counter() - started
                metrics.finished(method, route, status, seconds)
                if self.exemplars is not None and (trace_id := self.exemplars()) is not None:
                    metrics.exemplar(method, route, status, seconds, trace_id)
            except BaseException:
                if log_scope is not None:
                    REQUEST.reset(log_scope[1])  # the line is not written, but the log context still ends
                raise
            if log_scope is not None:
                access.finish(scope, log_scope, request_id, route, status, seconds, sent, error)  # type: ignore[union-attr]

    def route_of(self, scope: Scope) -> str:
        """The request's route template: from the scope, else (with `routes`) by matching the app's routes."""
        route = scope.get("route")
        if route is not None:  # Starlette, FastAPI: the common case first
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            if isinstance(template, str):
                return template
        template = route_template(scope)
        if template == UNMATCHED_ROUTE and self.routes is not None:
            return match_route(self.routes, scope)
        return template

    async def _not_timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The exposition, lifespan (closing the logs at shutdown) and anything but HTTP, as it is."""
        if scope["type"] == "http":
            await self._exposition(scope, send)
        elif scope["type"] == "lifespan" and self.logs is not None:
            # The same hook as the stand-alone layer, run from here: no extra hop on every HTTP request.
            from overdrive.observability.logs import FlushLogsOnShutdown  # noqa: PLC0415 -- once per lifespan

            await FlushLogsOnShutdown(self.app, logs=self.logs)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _exposition(self, scope: Scope, send: Send) -> None:
        accept = b",".join(value for name, value in scope["headers"] if name == b"accept").decode("latin-1")
        openmetrics = _openmetrics.accepts_openmetrics(accept)
        render = partial(self.metrics.render, openmetrics=openmetrics)
        # Multi-process mode reads the workers' files: off the event loop.
        body = (await asyncio.to_thread(render) if self.metrics.multiprocess_dir else render()).encode()
        content_type = _openmetrics.CONTENT_TYPE if openmetrics else "text/plain; version=0.0.4; charset=utf-8"
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
