"""instrument_app on real FastAPI, Starlette and Litestar apps: one line gives metrics, ids, timing and logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from litestar import Litestar, get
from litestar.params import FromPath
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import overdrive
from overdrive.observability import (
    ObservabilityMiddleware,
    RequestMetrics,
    StructuredLogs,
    configure_logging,
    instrument_app,
)
from overdrive.observability.logs import active_logs
from overdrive.types import ASGIApp, Receive, Scope, Send
from tests.observability.logsupport import read_lines

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("middleware_path")]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


@pytest.fixture
def logs(log_path: Path) -> Iterator[StructuredLogs]:
    with configure_logging(log_path) as configured:
        yield configured


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _access(logs: StructuredLogs, path: Path) -> list[dict[str, Any]]:
    assert logs.flush(5)
    return [line for line in read_lines(path) if line.get("logger") == "overdrive.access"]


async def _lifespan(app: ASGIApp) -> list[str]:
    """Run the app's startup and shutdown as a server would; returns what the app answered."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    answered: list[str] = []

    async def receive() -> dict[str, str]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        answered.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)  # type: ignore[arg-type]
    return answered


def _fastapi() -> FastAPI:
    api = FastAPI()

    @api.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        structlog.get_logger().info("fetching user")
        return {"user": user_id}

    return api


class TestFrameworks:
    async def test_fastapi_is_instrumented_in_place(self, logs: StructuredLogs, log_path: Path) -> None:
        api = _fastapi()
        metrics = RequestMetrics()
        assert instrument_app(api, metrics=metrics, logs=logs) is api
        async with _client(api) as client:
            response = await client.get("/users/5")
        assert response.json() == {"user": 5}
        assert response.headers["server-timing"].startswith("app;dur=")
        (line,) = _access(logs, log_path)
        assert (line["route"], line["status"], line["request_id"]) == (
            "/users/{user_id}",
            200,
            response.headers["x-request-id"],
        )
        assert metrics.series["GET", "/users/{user_id}", "2xx"].count == 1
        app_line = read_lines(log_path)[0]
        assert (app_line["event"], app_line["request_id"]) == ("fetching user", line["request_id"])

    async def test_starlette_serves_the_exposition(self, logs: StructuredLogs, log_path: Path) -> None:
        async def hello(request: Request) -> Response:
            return PlainTextResponse("hello")

        app = Starlette(routes=[Route("/hello", hello)])
        instrument_app(app, logs=logs)
        async with _client(app) as client:
            await client.get("/hello")
            exposition = await client.get("/metrics")
        assert 'route="/hello",status="2xx"' in exposition.text
        assert [line["route"] for line in _access(logs, log_path)] == ["/hello"]

    async def test_litestar_is_wrapped_and_its_route_templates_are_used(
        self, logs: StructuredLogs, log_path: Path
    ) -> None:
        @get("/orders/{order_id:int}")
        async def order(order_id: FromPath[int]) -> dict[str, int]:
            return {"order": order_id}

        metrics = RequestMetrics()
        app = instrument_app(Litestar([order], logging_config=None), metrics=metrics, logs=logs)
        async with _client(app) as client:
            found = await client.get("/orders/12")
            missing = await client.get("/nowhere")
        assert found.json() == {"order": 12}
        assert (found.status_code, missing.status_code) == (200, 404)
        assert [(line["route"], line["status"]) for line in _access(logs, log_path)] == [
            ("/orders/{order_id}", 200),
            ("(unmatched)", 404),
        ]
        assert metrics.series["GET", "/orders/{order_id}", "2xx"].count == 1

    def test_the_helper_is_exported_from_the_package_root(self) -> None:
        assert overdrive.instrument_app is instrument_app
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            _ = overdrive.nothing


class _Tag:
    """A stand-in for the later HTTP cache / compression middleware: records what it sees."""

    def __init__(self, app: ASGIApp, *, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["state"]["request_id"])
        await self.app(scope, receive, send)


class TestComposition:
    async def test_inner_middleware_runs_inside_the_observability_layer(self, logs: StructuredLogs) -> None:
        seen: list[str] = []
        api = instrument_app(_fastapi(), logs=logs, inner=[(_Tag, {"seen": seen})])
        async with _client(api) as client:
            response = await client.get("/users/1")
        assert seen == [response.headers["x-request-id"]], "the request id exists before inner middleware runs"

    async def test_a_bare_app_gets_the_same_stack(self, logs: StructuredLogs, log_path: Path) -> None:
        async def bare(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await PlainTextResponse("bare")(scope, receive, send)

        app = instrument_app(bare, logs=logs, server_timing=False, metrics_path=None)
        assert isinstance(app, ObservabilityMiddleware)
        async with _client(app) as client:
            response = await client.get("/metrics")
        assert response.text == "bare"
        assert "server-timing" not in response.headers
        assert len(_access(logs, log_path)) == 1

    async def test_the_defaults_log_json_to_stdout_and_flush_at_shutdown(
        self, capsysbinary: pytest.CaptureFixture[bytes]
    ) -> None:
        api = instrument_app(_fastapi())
        async with _client(api) as client:
            await client.get("/users/9")
        assert await _lifespan(api) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        lines = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
        access = [line for line in lines if line.get("logger") == "overdrive.access"]
        assert [line["path"] for line in access] == ["/users/9"]
        assert active_logs() is None, "shutdown closed and unconfigured the logs"

    async def test_an_active_configuration_is_used_rather_than_replaced(self, log_path: Path) -> None:
        with configure_logging(log_path) as logs:
            api = instrument_app(_fastapi())
            async with _client(api) as client:
                await client.get("/users/4")
            assert active_logs() is logs
            assert [line["path"] for line in _access(logs, log_path)] == ["/users/4"]
            assert await _lifespan(api) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
            assert active_logs() is None, "the lifespan hook closed it"

    async def test_no_access_log_means_no_logging_configuration(self) -> None:
        before = structlog.get_config()
        api = instrument_app(_fastapi(), access_log=False)
        async with _client(api) as client:
            response = await client.get("/users/2")
        assert "x-request-id" in response.headers
        assert structlog.get_config() == before


class TestWithTracing:
    async def test_trace_ids_reach_app_and_access_lines(self, log_path: Path) -> None:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from overdrive.observability.tracing import add_trace_ids, traced, tracer_provider

        exporter = InMemorySpanExporter()
        provider = tracer_provider(service_name="shop", sample_ratio=1.0, exporter=exporter, batch=False)
        with configure_logging(log_path, processors=[add_trace_ids]) as logs:
            app = traced(instrument_app(_fastapi(), logs=logs), provider)
            async with _client(app) as client:
                await client.get("/users/3")
            assert logs.flush(5)
        app_line, access_line = [line for line in read_lines(log_path) if line.get("logger") != "httpx"]
        (span,) = exporter.get_finished_spans()
        context = span.get_span_context()
        assert context is not None
        trace_id = format(context.trace_id, "032x")
        assert app_line["trace_id"] == access_line["trace_id"] == trace_id
        assert app_line["request_id"] == access_line["request_id"]
