"""The access log and request log context, through ObservabilityMiddleware on real Starlette apps."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars, get_contextvars

from overdrive.observability import (
    AccessLog,
    ObservabilityMiddleware,
    RequestMetrics,
    StructuredLogs,
    merge_request_context,
    request_fields,
)
from overdrive.observability.access import ACCESS_EVENT
from overdrive.observability.logs import configure_logging
from tests.observability.logsupport import read_lines

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("middleware_path")]


async def _item(request: Request) -> Response:
    structlog.get_logger().info("loading item", item=request.path_params["item_id"])
    logging.getLogger("shop.db").info("query ran")
    bind_contextvars(user_id=42)
    return PlainTextResponse("item " + str(request.path_params["item_id"]))


async def _boom(request: Request) -> Response:
    msg = "boom"
    raise RuntimeError(msg)


async def _streamed(request: Request) -> Response:
    async def chunks() -> Any:
        for _ in range(3):
            yield b"x" * 1000

    from starlette.responses import StreamingResponse

    return StreamingResponse(chunks())


def _app(**options: Any) -> ObservabilityMiddleware:
    app = Starlette(routes=[Route("/items/{item_id:int}", _item), Route("/boom", _boom), Route("/stream", _streamed)])
    return ObservabilityMiddleware(app, metrics=RequestMetrics(), access_log=AccessLog(), **options)


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.9", 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "access.log"


@pytest.fixture
def logs(log_path: Path) -> Iterator[StructuredLogs]:
    with configure_logging(log_path) as configured:
        yield configured


def _lines(logs: StructuredLogs, path: Path) -> list[dict[str, Any]]:
    """The lines the server side wrote (httpx, the client, logs its requests through the stdlib bridge too)."""
    assert logs.flush(5)
    return [line for line in read_lines(path) if line.get("logger") != "httpx"]


def _access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("logger") == "overdrive.access"]


class TestAccessLines:
    async def test_one_line_per_request_with_the_request_facts(self, logs: StructuredLogs, log_path: Path) -> None:
        async with _client(_app()) as client:
            ok = await client.get("/items/7")
            missing = await client.get("/nowhere")
            stream = await client.get("/stream")
        access = _access(_lines(logs, log_path))
        assert [(line["method"], line["route"], line["path"], line["status"]) for line in access] == [
            ("GET", "/items/{item_id}", "/items/7", 200),
            ("GET", "(unmatched)", "/nowhere", 404),
            ("GET", "/stream", "/stream", 200),
        ]
        assert [line["request_id"] for line in access] == [
            response.headers["x-request-id"] for response in (ok, missing, stream)
        ]
        assert [line["bytes_sent"] for line in access] == [len(ok.content), len(missing.content), 3000]
        assert all(line["client"] == "203.0.113.9" for line in access)
        assert all(line["event"] == ACCESS_EVENT and line["level"] == "info" for line in access)
        assert all(0 <= line["duration_ms"] < 5_000 for line in access)

    async def test_an_exception_from_the_app_is_logged_as_a_5xx_with_its_traceback(
        self, logs: StructuredLogs, log_path: Path
    ) -> None:
        async with _client(_app()) as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        (line,) = _access(_lines(logs, log_path))
        assert (line["route"], line["status"], line["level"]) == ("/boom", 500, "error")
        assert "RuntimeError: boom" in line["exception"]

    async def test_an_exception_from_a_bare_asgi_app_is_logged(self, logs: StructuredLogs, log_path: Path) -> None:
        async def bare(scope: Any, receive: Any, send: Any) -> None:
            msg = "bare failure"
            raise ValueError(msg)

        app = ObservabilityMiddleware(bare, metrics=RequestMetrics(), access_log=AccessLog())
        async with _client(app) as client:
            response = await client.get("/anything")
        assert response.status_code == 500, "httpx's transport answers 500 for the raised exception"
        (line,) = _access(_lines(logs, log_path))
        assert (line["status"], line["route"], line["bytes_sent"]) == (500, "(unmatched)", 0)
        assert "ValueError: bare failure" in line["exception"]

    async def test_a_5xx_response_is_logged_at_the_error_level(self, logs: StructuredLogs, log_path: Path) -> None:
        async def unavailable(scope: Any, receive: Any, send: Any) -> None:
            await PlainTextResponse("down", status_code=503)(scope, receive, send)

        app = ObservabilityMiddleware(unavailable, metrics=RequestMetrics(), access_log=AccessLog())
        async with _client(app) as client:
            await client.get("/")
        (line,) = _access(_lines(logs, log_path))
        assert (line["status"], line["level"]) == (503, "error")
        assert "exception" not in line

    async def test_without_an_access_log_nothing_is_written(self, logs: StructuredLogs, log_path: Path) -> None:
        app = ObservabilityMiddleware(Starlette(), metrics=RequestMetrics())
        async with _client(app) as client:
            await client.get("/")
        assert _lines(logs, log_path) == []

    async def test_a_reconfiguration_is_followed(self, tmp_path: Path) -> None:
        app = _app()
        for name in ("first.log", "second.log"):
            with configure_logging(tmp_path / name) as logs:
                async with _client(app) as client:
                    await client.get("/items/1")
                assert len(_access(_lines(logs, tmp_path / name))) == 1


class TestRequestContext:
    async def test_app_lines_carry_the_request_id_route_and_method(self, logs: StructuredLogs, log_path: Path) -> None:
        async with _client(_app()) as client:
            response = await client.get("/items/3", headers={"X-Request-ID": "req-abc"})
        assert response.headers["x-request-id"] == "req-abc"
        app_line, stdlib_line, access_line = _lines(logs, log_path)
        for line in (app_line, stdlib_line, access_line):
            assert (line["request_id"], line["route"], line["method"]) == ("req-abc", "/items/{item_id}", "GET")
        assert app_line["event"] == "loading item"
        assert stdlib_line["logger"] == "shop.db"

    async def test_fields_bound_by_the_app_reach_the_access_line_and_end_with_the_request(
        self, logs: StructuredLogs, log_path: Path
    ) -> None:
        with bound_contextvars(deployment="blue"):
            async with _client(_app()) as client:
                await client.get("/items/1")
                await client.get("/nowhere")
            assert get_contextvars() == {"deployment": "blue"}, "the outer context is put back as it was"
        first, second = _access(_lines(logs, log_path))
        assert first["user_id"] == 42
        assert "user_id" not in second, "one request's fields do not leak into the next"
        assert first["deployment"] == second["deployment"] == "blue"

    async def test_the_access_line_keeps_its_facts_when_the_app_clears_the_context(
        self, logs: StructuredLogs, log_path: Path
    ) -> None:
        async def forgetful(request: Request) -> Response:
            clear_contextvars()
            return PlainTextResponse("ok")

        app = ObservabilityMiddleware(
            Starlette(routes=[Route("/f", forgetful)]), metrics=RequestMetrics(), access_log=AccessLog()
        )
        async with _client(app) as client:
            response = await client.get("/f")
        (line,) = _access(_lines(logs, log_path))
        assert (line["request_id"], line["method"], line["path"], line["route"]) == (
            response.headers["x-request-id"],
            "GET",
            "/f",
            "/f",
        )

    async def test_the_request_id_is_shared_with_the_app(self, logs: StructuredLogs, log_path: Path) -> None:
        seen: list[str] = []

        async def endpoint(request: Request) -> Response:
            seen.append(request.scope["state"]["request_id"])
            return PlainTextResponse("ok")

        app = ObservabilityMiddleware(
            Starlette(routes=[Route("/", endpoint)]), metrics=RequestMetrics(), access_log=AccessLog()
        )
        async with _client(app) as client:
            response = await client.get("/")
        (line,) = _access(_lines(logs, log_path))
        assert seen == [line["request_id"]] == [response.headers["x-request-id"]]

    async def test_a_field_bound_outside_and_rebound_by_the_app_gets_its_outer_value_back(
        self, logs: StructuredLogs, log_path: Path
    ) -> None:
        async def relabel(request: Request) -> Response:
            bind_contextvars(deployment="green")
            return PlainTextResponse("ok")

        app = ObservabilityMiddleware(
            Starlette(routes=[Route("/r", relabel)]), metrics=RequestMetrics(), access_log=AccessLog()
        )
        with bound_contextvars(deployment="blue"):
            async with _client(app) as client:
                await client.get("/r")
            assert get_contextvars() == {"deployment": "blue"}
        (line,) = _access(_lines(logs, log_path))
        assert line["deployment"] == "green", "the access line shows what the request bound"

    async def test_request_fields_are_readable_inside_and_empty_outside(self, logs: StructuredLogs) -> None:
        seen: list[dict[str, str]] = []

        async def endpoint(request: Request) -> Response:
            seen.append(request_fields())
            return PlainTextResponse("ok")

        app = ObservabilityMiddleware(
            Starlette(routes=[Route("/items/{item_id}", endpoint)]), metrics=RequestMetrics(), access_log=AccessLog()
        )
        async with _client(app) as client:
            response = await client.get("/items/5")
        assert seen == [
            {
                "request_id": response.headers["x-request-id"],
                "method": "GET",
                "path": "/items/5",
                "route": "/items/{item_id}",
            }
        ]
        assert request_fields() == {}


class TestOtherStructlogConfigurations:
    async def test_an_app_configuring_structlog_itself_gets_the_access_line_and_the_request_fields(self) -> None:
        captured: list[dict[str, Any]] = []

        def capture(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> str:
            captured.append(dict(event_dict))
            return ""

        previous = structlog.get_config()
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars, merge_request_context, capture],
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        try:
            async with _client(_app()) as client:
                response = await client.get("/items/4")
        finally:
            structlog.configure(**previous)
        app_line = next(line for line in captured if line["event"] == "loading item")
        access_line = next(line for line in captured if line["event"] == ACCESS_EVENT)
        assert app_line["request_id"] == access_line["request_id"] == response.headers["x-request-id"]
        assert app_line["route"] == access_line["route"] == "/items/{item_id}"
        assert (access_line["status"], access_line["user_id"], access_line["logger"]) == (200, 42, "overdrive.access")

    async def test_lines_under_the_configured_level_are_not_written(self, tmp_path: Path) -> None:
        with configure_logging(tmp_path / "warn.log", level="warning") as logs:
            async with _client(_app()) as client:
                await client.get("/items/1")
                await client.get("/boom")
            lines = _access(_lines(logs, tmp_path / "warn.log"))
        assert [(line["status"], line["level"]) for line in lines] == [(500, "error")]

    async def test_an_unknown_level_for_server_errors_is_refused(self) -> None:
        with pytest.raises(ValueError, match="Unknown log level 'loud'"):
            AccessLog(server_errors_as="loud")

    async def test_extra_processors_run_on_the_access_line(self, tmp_path: Path) -> None:
        def stamp(_logger: object, _method: str, event_dict: Any) -> Any:
            event_dict["region"] = "eu"
            return event_dict

        with configure_logging(tmp_path / "p.log", processors=[stamp]) as logs:
            async with _client(_app()) as client:
                await client.get("/items/2")
            (line,) = _access(_lines(logs, tmp_path / "p.log"))
        assert (line["region"], line["route"], line["status"]) == ("eu", "/items/{item_id}", 200)

    async def test_a_bound_value_json_cannot_hold_is_written_as_its_repr(self, tmp_path: Path) -> None:
        class Opaque:
            def __repr__(self) -> str:
                return "<opaque thing>"

        async def binds_an_object(request: Request) -> Response:
            bind_contextvars(thing=Opaque(), huge=2**70)
            return PlainTextResponse("ok")

        app = ObservabilityMiddleware(
            Starlette(routes=[Route("/o", binds_an_object)]), metrics=RequestMetrics(), access_log=AccessLog()
        )
        with configure_logging(tmp_path / "o.log") as logs:
            async with _client(app) as client:
                await client.get("/o")
            (line,) = _access(_lines(logs, tmp_path / "o.log"))
        assert (line["thing"], line["huge"], line["status"]) == ("<opaque thing>", repr(2**70), 200)
