"""The compiled per-request path (`_speedups.c`) against the Python reference path of `ObservabilityMiddleware`."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.observability import AccessLog, ObservabilityMiddleware, RequestMetrics, StructuredLogs
from overdrive.observability._render import render_line
from overdrive.observability.logs import configure_logging
from overdrive.types import Message, Receive, Scope, Send
from tests.observability.logsupport import read_lines

_speedups = pytest.importorskip("overdrive.observability._speedups", reason="the compiled extension was not built")

HOSTILE_TEXT = [
    "/",
    "/items/42",
    '/quote"and\\backslash',
    "/ctl\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f",
    "/ünïcödé/東京/🚀",
    "/\u2028\u2029",
    "",
    "/" + "x" * 5000,
]


def _python_line(  # noqa: PLR0917 -- the positional order of _speedups.access_line
    level: str,
    logger: str,
    request_id: str,
    method: str,
    path: str,
    route: str,
    status: int,
    whole_us: int,
    sent: int,
    client: str | None,
    unix_us: int,
) -> bytes:
    """The line access.py builds and orjson renders, for the same facts."""
    stamp = datetime.fromtimestamp(unix_us // 1_000_000, UTC).replace(microsecond=unix_us % 1_000_000)
    fields = {
        "event": "request",
        "level": level,
        "logger": logger,
        "request_id": request_id,
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": whole_us / 1000,
        "bytes_sent": sent,
        "client": client,
        "timestamp": stamp,
    }
    return render_line(fields)


class TestAccessLine:
    @pytest.mark.parametrize("path", HOSTILE_TEXT)
    def test_paths_are_escaped_byte_for_byte_as_orjson_does(self, path: str) -> None:
        facts = ("info", "overdrive.access", "0123456789abcdef", "GET", path, "/items/{id}", 200, 1234, 5)
        unix_us = 1_764_000_000_123_456
        assert _speedups.access_line(*facts, "127.0.0.1", unix_us) == _python_line(*facts, "127.0.0.1", unix_us)

    @pytest.mark.parametrize("whole_us", [0, 1, 10, 100, 999, 1000, 1500, 123_456, 100_000_000, 987_654_321_012])
    def test_durations_are_written_as_orjson_writes_the_float(self, whole_us: int) -> None:
        facts = ("error", "app.access", "id-1", "POST", "/", "/", 503, whole_us, 0)
        assert _speedups.access_line(*facts, None, 1_700_000_000_000_000) == _python_line(
            *facts, None, 1_700_000_000_000_000
        )

    @pytest.mark.parametrize("unix_us", [0, 1, 999_999, 1_000_000, 951_782_400_000_000, 4_102_444_799_999_999])
    def test_timestamps_match_orjson_with_and_without_a_fraction(self, unix_us: int) -> None:
        facts = ("info", "a", "b", "GET", "/", "/", 204, 7, 0)
        assert _speedups.access_line(*facts, "::1", unix_us) == _python_line(*facts, "::1", unix_us)

    @pytest.mark.parametrize(
        "value",
        ["\ud800 lone surrogate", 42, None, b"bytes"],
    )
    def test_a_value_only_python_can_render_is_left_to_python(self, value: object) -> None:
        assert _speedups.access_line("info", "a", "b", "GET", value, "/", 200, 1, 0, None, 0) is None

    def test_a_timestamp_before_1970_is_refused(self) -> None:
        with pytest.raises(OverflowError, match="out of range"):
            _speedups.access_line("info", "a", "b", "GET", "/", "/", 200, 1, 0, None, -1)


async def _item(request: Request) -> Response:
    return PlainTextResponse("item " + str(request.path_params["item_id"]))


async def _fail(request: Request) -> Response:
    return PlainTextResponse("down", status_code=503)


def _app(logs: StructuredLogs | None, *, compiled: bool, **options: Any) -> ObservabilityMiddleware:
    app = Starlette(routes=[Route("/items/{item_id:int}", _item), Route("/fail", _fail)])
    access = AccessLog(logs=logs) if logs is not None else None
    return ObservabilityMiddleware(app, metrics=RequestMetrics(), access_log=access, compiled=compiled, **options)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[StructuredLogs]:
    with configure_logging(tmp_path / "access.log") as configured:
        yield configured


async def _fresh(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await `call()` in a task with an empty context, as a server runs a request (the compiled fast path's case)."""
    return await asyncio.get_running_loop().create_task(call(), context=contextvars.Context())  # type: ignore[arg-type]


async def _run(app: ObservabilityMiddleware, requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]

    result: list[httpx.Response] = await _fresh(run)
    return result


REQUESTS = [
    ("/items/1", {"x-request-id": "fixed-1"}),
    ("/items/2?q=1", {"x-request-id": "fixed-2"}),
    ("/fail", {"x-request-id": "fixed-3"}),
    ("/nowhere/\u00e9", {"x-request-id": "fixed-4"}),
    ("/items/3", {"x-request-id": "bad id with spaces"}),
]


@pytest.mark.anyio
class TestSamePathsSameResults:
    async def test_access_lines_and_metrics_match_the_python_path(self, logs: StructuredLogs, tmp_path: Path) -> None:
        results = {}
        for compiled in (True, False):
            app = _app(logs, compiled=compiled)
            assert app.compiled is compiled
            responses = await _run(app, REQUESTS)
            assert logs.flush(5)
            lines = [line for line in read_lines(tmp_path / "access.log") if line.get("logger") != "httpx"]
            (tmp_path / "access.log").write_bytes(b"")
            for line in lines:
                line.pop("timestamp")
                line.pop("duration_ms")
                if line["request_id"] not in {"fixed-1", "fixed-2", "fixed-3", "fixed-4"}:
                    line["request_id"] = "generated"
            counts = {key: (sum(series.buckets), series.total > 0) for key, series in app.metrics.series.items()}
            echoed = [response.headers["x-request-id"] for response in responses[:4]]
            results[compiled] = (lines, counts, dict(app.metrics.in_flight), echoed)
            if compiled:  # every line took the compiled path, not access.py's
                assert app._hot is not None
                assert app._hot.fast_lines == len(REQUESTS)
        assert results[True] == results[False]
        lines, counts, in_flight, echoed = results[True]
        assert echoed == ["fixed-1", "fixed-2", "fixed-3", "fixed-4"]
        assert [line["status"] for line in lines] == [200, 200, 503, 404, 200]
        assert [line["level"] for line in lines] == ["info", "info", "error", "info", "info"]
        assert lines[0]["client"] == "198.51.100.7"
        assert in_flight == {"GET": 0}
        assert counts[("GET", "/items/{item_id}", "2xx")] == (3, True)

    async def test_the_fast_line_keeps_the_python_field_order(self, logs: StructuredLogs, tmp_path: Path) -> None:
        await _run(_app(logs, compiled=True), [("/items/5", {})])
        assert logs.flush(5)
        raw = (tmp_path / "access.log").read_bytes().splitlines()[0]
        keys = list(orjson.loads(raw))
        assert keys == [
            "event",
            "level",
            "logger",
            "request_id",
            "method",
            "path",
            "route",
            "status",
            "duration_ms",
            "bytes_sent",
            "client",
            "timestamp",
        ]

    async def test_generated_request_ids_are_16_hex_digits_and_distinct(self) -> None:
        app = _app(None, compiled=True)
        responses = await _run(app, [("/items/1", {})] * 200)
        ids = {response.headers["x-request-id"] for response in responses}
        assert len(ids) == 200
        assert all(len(value) == 16 and int(value, 16) >= 0 for value in ids)


@pytest.mark.anyio
class TestMessages:
    async def _send_through(self, messages: list[Any]) -> list[Message]:
        sent: list[Message] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            for message in messages:
                await send(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def collect(message: Message) -> None:
            sent.append(message)

        middleware = ObservabilityMiddleware(app, metrics=RequestMetrics(), compiled=True)
        scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
        await middleware(scope, receive, collect)
        return sent

    @pytest.mark.parametrize("headers", [None, (), ((b"content-type", b"text/plain"),)])
    async def test_headers_that_are_not_a_list_are_copied_into_one(self, headers: Any) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if headers is not None:
            start["headers"] = headers
        sent = await self._send_through([start, {"type": "http.response.body", "body": b"ok"}])
        names = [name for name, _ in sent[0]["headers"]]
        assert type(sent[0]["headers"]) is list
        assert names[-2:] == [b"x-request-id", b"server-timing"]
        assert sent[0]["headers"][-1][1].startswith(b"app;dur=")

    async def test_a_message_without_a_type_raises_as_the_python_path_does(self) -> None:
        with pytest.raises(KeyError, match="type"):
            await self._send_through([{"status": 200}])

    async def test_a_request_cannot_end_twice(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        hot = ObservabilityMiddleware(app, metrics=RequestMetrics(), compiled=True)._hot
        assert hot is not None

        async def send(message: Message) -> None:
            return None

        request = hot.begin({"type": "http", "method": "GET", "path": "/", "headers": []}, send)
        request.end(None)
        with pytest.raises(RuntimeError, match="already ended"):
            request.end(None)


def _hot(**options: Any) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    hot = ObservabilityMiddleware(app, metrics=RequestMetrics(), compiled=True, **options)._hot
    assert hot is not None
    return hot


async def _ignore(message: Message) -> None:
    return None


def _scope(**fields: Any) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None, **fields}


class TestMisuse:
    def test_an_uninitialised_hot_refuses_to_begin(self) -> None:
        hot = _speedups.Hot.__new__(_speedups.Hot)
        with pytest.raises(RuntimeError, match="not initialised"):
            hot.begin(_scope(), _ignore)

    def test_ending_in_another_context_raises_instead_of_failing_silently(self, logs: StructuredLogs) -> None:
        hot = _hot(access_log=AccessLog(logs=logs))
        started = contextvars.Context()
        request = started.run(hot.begin, _scope(), _ignore)
        with pytest.raises(ValueError, match="different Context"):  # not a SystemError with the error left pending
            contextvars.Context().run(_end_elsewhere, started, request)
        assert hot.fast_lines == 1  # the line was written on the compiled path before the reset failed


class _Falsy:
    def __bool__(self) -> bool:
        msg = "no truth here"
        raise LookupError(msg)


@pytest.mark.anyio
class TestSameErrorsOnBothPaths:
    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            ({"headers": None}, TypeError),
            ({"headers": [(b"x-request-id", b"a", b"b")]}, ValueError),
            ({"headers": [(b"x-request-id", "text")]}, TypeError),
            ({"client": _Falsy()}, LookupError),
        ],
    )
    async def test_odd_scopes_raise_the_same_error(
        self, logs: StructuredLogs, fields: dict[str, Any], error: type[Exception]
    ) -> None:
        from overdrive.observability.context import REQUEST

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def receive() -> Message:
            return {"type": "http.request"}

        for compiled in (True, False):
            middleware = ObservabilityMiddleware(
                app, metrics=RequestMetrics(), access_log=AccessLog(logs=logs), compiled=compiled
            )

            async def call(middleware: ObservabilityMiddleware = middleware) -> Any:
                await middleware(_scope(**fields), receive, _ignore)
                return REQUEST.get()

            with pytest.raises(error):
                await _fresh(call)
            assert REQUEST.get() is None

    async def test_a_scope_without_headers_raises_key_error_on_both_paths(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        async def receive() -> Message:
            return {"type": "http.request"}

        for compiled in (True, False):
            middleware = ObservabilityMiddleware(app, metrics=RequestMetrics(), compiled=compiled)
            scope = _scope()
            del scope["headers"]
            with pytest.raises(KeyError, match="headers"):
                await middleware(scope, receive, _ignore)


class TestRegistries:
    def test_a_registry_that_counts_its_own_way_runs_the_python_path(self) -> None:
        class OnlyGet(RequestMetrics):
            methods = frozenset({"GET"})

        class Custom(RequestMetrics):
            def finished(self, method: str, route: str, status: int, seconds: float) -> None:
                super().finished(method, route, status, seconds)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        assert ObservabilityMiddleware(app, metrics=OnlyGet()).compiled
        assert not ObservabilityMiddleware(app, metrics=Custom()).compiled
        assert ObservabilityMiddleware(app, metrics=RequestMetrics()).compiled

    def test_series_it_does_not_recognise_are_counted_through_the_object_protocol(self) -> None:
        class Count(int):
            pass

        class Series:
            def __init__(self) -> None:
                self.buckets = [Count(0)] * 12
                self.total = 0.0

        made: list[Series] = []

        def new_series(key: tuple[str, str, str]) -> Series:
            made.append(Series())
            return made[-1]

        metrics = RequestMetrics()
        hot = _speedups.Hot(
            in_flight=metrics.in_flight,
            series={},
            status_classes=metrics.status_classes,
            methods=metrics.methods,
            new_series=new_series,
            route_of=lambda scope: "/r",
            buckets=metrics.buckets,
            server_timing=False,
            trust_request_id=False,
            seed=1,
            request_var=__import__("overdrive.observability.context", fromlist=["REQUEST"]).REQUEST,
            access=None,
            info_level=20,
            error_level=40,
            exemplars=None,
            exemplar=metrics.exemplar,
        )
        hot.begin(_scope(), _ignore).end(None)
        assert sum(made[0].buckets) == 1
        assert made[0].total > 0


def _end_elsewhere(started: contextvars.Context, request: Any) -> None:
    """End `request` in a context holding the request's variable (so the fast path runs) but not `started` itself."""
    for variable, value in started.items():
        variable.set(value)
    request.end(None)
