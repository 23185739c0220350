"""Opt-in tracing: one server span per request named by route, no send/receive spans, parent-based ratio sampling."""

from __future__ import annotations

import httpx
import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.exceptions import ConfigurationError
from overdrive.observability.tracing import add_trace_ids, traced, tracer_provider
from overdrive.types import ASGIApp, Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def starlette_app(logged: list[dict[str, object]]) -> Starlette:
    async def item(request: Request) -> PlainTextResponse:
        logged.append(add_trace_ids(None, "info", {"event": "item"}))  # type: ignore[arg-type]
        return PlainTextResponse(f"item {request.path_params['ident']}")

    return Starlette(routes=[Route("/items/{ident:int}", item)])


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{name}")
    async def user(name: str) -> dict[str, str]:
        return {"name": name}

    return app


async def get(app: ASGIApp, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_one_server_span_per_request_named_by_route() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(service_name="shop", sample_ratio=1.0, exporter=exporter, batch=False)
    logged: list[dict[str, object]] = []
    app = traced(starlette_app(logged), provider)
    for ident in (1, 2, 3):
        assert (await get(app, f"/items/{ident}")).text == f"item {ident}"
    assert (await get(app, "/nowhere")).status_code == 404
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /items/{ident}"] * 3 + ["GET"]
    assert all(s.kind is SpanKind.SERVER for s in spans)
    assert spans[0].attributes is not None
    assert spans[0].attributes["http.route"] == "/items/{ident}"
    assert spans[3].attributes is not None
    assert "http.route" not in spans[3].attributes
    assert spans[0].resource.attributes["service.name"] == "shop"
    first = spans[0].get_span_context()
    assert first is not None
    assert logged[0]["trace_id"] == format(first.trace_id, "032x")
    assert logged[0]["span_id"] == format(first.span_id, "016x")


async def test_fastapi_routes_and_excluded_urls() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(service_name="api", sample_ratio=1.0, exporter=exporter, batch=False)
    app = traced(fastapi_app(), provider, excluded_urls="/docs")
    assert (await get(app, "/users/ada")).json() == {"name": "ada"}
    assert (await get(app, "/docs")).status_code == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /users/{name}"]


async def test_the_ratio_applies_to_new_traces_and_a_sampled_parent_is_followed() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(service_name="shop", sample_ratio=0.0, exporter=exporter, batch=False)
    logged: list[dict[str, object]] = []
    app = traced(starlette_app(logged), provider)
    for _ in range(20):
        await get(app, "/items/1")
    assert exporter.get_finished_spans() == ()
    assert "trace_id" not in logged[0]  # not sampled: no ids in logs either
    parent = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    await get(app, "/items/2", headers=parent)
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert logged[-1]["trace_id"] == TRACE_ID
    unsampled_parent = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"}
    await get(app, "/items/3", headers=unsampled_parent)
    assert len(exporter.get_finished_spans()) == 1


async def test_a_half_ratio_samples_about_half() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(service_name="shop", sample_ratio=0.5, exporter=exporter, batch=False)
    app = traced(starlette_app([]), provider)
    for _ in range(400):
        await get(app, "/items/1")
    assert 140 < len(exporter.get_finished_spans()) < 260  # binomial(400, 0.5): 7 sigma either side


async def test_lifespan_and_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(str(scope["type"]))

    provider = tracer_provider(service_name="x", sample_ratio=1.0)
    wrapped = traced(app, provider)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert seen == ["lifespan"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\[0, 1\]"):
        tracer_provider(service_name="x", sample_ratio=1.5)
    with pytest.raises(ConfigurationError, match="service_name"):
        tracer_provider(service_name="")


def test_the_processor_leaves_events_alone_outside_spans() -> None:
    assert add_trace_ids(structlog.get_logger(), "info", {"event": "x"}) == {"event": "x"}
