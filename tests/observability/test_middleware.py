"""The observability middleware on real Starlette and FastAPI apps: labels, bounds, ids, timing, exposition."""

from __future__ import annotations

import asyncio
import os
import random
import string
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.observability import ObservabilityMiddleware, RequestMetrics
from overdrive.observability.metrics import OTHER_ROUTE, UNMATCHED_ROUTE
from overdrive.types import Message, Receive, Scope, Send

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("middleware_path")]


async def _item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def _boom(request: Request) -> Response:
    msg = "boom"
    raise RuntimeError(msg)


async def _created(request: Request) -> Response:
    return PlainTextResponse(request.scope["state"]["request_id"], status_code=201)


def _starlette(metrics: RequestMetrics, **options: object) -> ObservabilityMiddleware:
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", _item),
            Route("/boom", _boom),
            Route("/things", _created, methods=["POST"]),
        ]
    )
    return ObservabilityMiddleware(app, metrics=metrics, **options)  # type: ignore[arg-type]


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _samples(metrics: RequestMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class TestLabels:
    async def test_requests_are_counted_by_route_template_and_status_class(self) -> None:
        metrics = RequestMetrics()
        async with _client(_starlette(metrics)) as client:
            for item in (1, 2, 3):
                assert (await client.get(f"/items/{item}")).status_code == 200
            assert (await client.post("/things")).status_code == 201
            assert (await client.get("/boom")).status_code == 500
            assert (await client.get("/nowhere")).status_code == 404
        samples = _samples(metrics)
        count = "http_server_request_duration_seconds_count"

        def labels(method: str, route: str, status: str) -> tuple[tuple[str, str], ...]:
            return (("method", method), ("route", route), ("status", status))

        assert samples[(count, labels("GET", "/items/{item_id}", "2xx"))] == 3
        assert samples[(count, labels("POST", "/things", "2xx"))] == 1
        assert samples[(count, labels("GET", "/boom", "5xx"))] == 1
        assert samples[(count, labels("GET", UNMATCHED_ROUTE, "4xx"))] == 1
        assert samples[("http_server_requests_in_flight", (("method", "GET"),))] == 0

    async def test_fastapi_route_templates(self) -> None:
        api = FastAPI()

        @api.get("/users/{user_id}/orders")
        async def orders(user_id: int) -> dict[str, int]:
            return {"user": user_id}

        metrics = RequestMetrics()
        async with _client(ObservabilityMiddleware(api, metrics=metrics)) as client:
            await client.get("/users/7/orders")
            await client.get("/users/8/orders")
        assert ("GET", "/users/{user_id}/orders", "2xx") in metrics.series
        assert metrics.series["GET", "/users/{user_id}/orders", "2xx"].count == 2

    async def test_random_paths_do_not_grow_the_series(self) -> None:
        metrics = RequestMetrics()
        rng = random.Random(5)
        async with _client(_starlette(metrics)) as client:
            for _ in range(2_000):
                path = "/" + "".join(rng.choices(string.ascii_lowercase, k=12))
                await client.request(rng.choice(["GET", "PURGE", "POST"]), path)
        routes = {route for _, route, _ in metrics.series}
        assert routes == {UNMATCHED_ROUTE}
        assert len(metrics.series) <= 3 * 5, "methods fold into a known set, statuses into classes"

    async def test_a_hundred_thousand_random_paths_leave_the_series_and_the_scrape_as_they_were(self) -> None:
        """The issue's bad-input case at full size: driven through the ASGI interface directly, to stay quick."""
        metrics = RequestMetrics()
        app = _starlette(metrics)
        rng = random.Random(11)
        statuses: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def hit(method: str, path: str) -> None:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                     "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                     "root_path": "", "headers": [], "client": ("127.0.0.1", 1), "server": ("test", 80)}  # fmt: skip
            await app(scope, receive, send)

        await hit("GET", "/items/1")
        before = len(metrics.render())
        for _ in range(100_000):
            path = "/" + "".join(rng.choices(string.ascii_lowercase + "/%.", k=rng.randint(1, 40)))
            await hit(rng.choice(["GET", "POST", "BREW", "get", "PROPFIND"]), path)
        assert len(statuses) == 100_001
        assert {route for _, route, _ in metrics.series} == {"/items/{item_id}", UNMATCHED_ROUTE}
        assert len(metrics.series) <= 1 + 5 * 5
        assert len(metrics.render()) < before + 40 * 1024  # a bounded number of series, whatever the paths were

    async def test_scrapes_during_heavy_load_parse_and_never_go_backwards(self) -> None:
        metrics = RequestMetrics()
        app = _starlette(metrics)
        served = 0
        scraped: list[float] = []

        async def traffic() -> None:
            nonlocal served
            async with _client(app) as client:
                for _ in range(25):
                    batch = await asyncio.gather(*(client.get(f"/items/{n}") for n in range(200)))
                    served += len(batch)

        async def scrape() -> None:
            async with _client(app) as client:
                while served < 5_000:
                    text = (await client.get("/metrics")).text
                    families = {f.name: f for f in text_string_to_metric_families(text)}
                    total = sum(
                        s.value
                        for s in families["http_server_request_duration_seconds"].samples
                        if s.name.endswith("_count")
                    )
                    scraped.append(total)
                    await asyncio.sleep(0)

        await asyncio.gather(traffic(), scrape())
        assert len(scraped) >= 10
        assert scraped == sorted(scraped), "counts never go backwards"
        final = _samples(metrics)
        assert (
            final[
                "http_server_request_duration_seconds_count",
                (("method", "GET"), ("route", "/items/{item_id}"), ("status", "2xx")),
            ]
            == 5_000
        )
        assert all(v == 0 for (name, _), v in final.items() if name == "http_server_requests_in_flight")

    def test_route_templates_past_the_limit_fold_into_other(self) -> None:
        metrics = RequestMetrics(max_routes=3)
        for index in range(10):
            metrics.started("GET")
            metrics.finished("GET", f"/r{index}", 200, 0.01)
        routes = {route for _, route, _ in metrics.series}
        assert routes == {"/r0", "/r1", "/r2", OTHER_ROUTE}
        assert metrics.series["GET", OTHER_ROUTE, "2xx"].count == 7

    def test_buckets_include_the_alert_threshold_and_are_cumulative(self) -> None:
        metrics = RequestMetrics()
        for seconds in (0.001, 0.5, 0.7, 30.0):
            metrics.started("GET")
            metrics.finished("GET", "/x", 200, seconds)
        samples = _samples(metrics)
        bucket = "http_server_request_duration_seconds_bucket"
        base = (("method", "GET"), ("route", "/x"), ("status", "2xx"))

        def le(bound: str) -> float:
            return samples[(bucket, tuple(sorted((*base, ("le", bound)))))]

        assert le("0.005") == 1
        assert le("0.5") == 2, "a 0.5 s request counts as <= 0.5 s"
        assert le("1.0") == 3
        assert le("+Inf") == 4

    def test_bad_buckets_are_refused(self) -> None:
        with pytest.raises(ValueError, match="positive, distinct and increasing"):
            RequestMetrics(buckets=(1.0, 0.5))


class TestRequestIds:
    async def test_a_good_incoming_id_is_kept_and_echoed(self) -> None:
        async with _client(_starlette(RequestMetrics())) as client:
            response = await client.post("/things", headers={"X-Request-ID": "abc-123.4:5"})
        assert response.headers["x-request-id"] == "abc-123.4:5"
        assert response.text == "abc-123.4:5", "the app sees the id in scope['state']"

    @pytest.mark.parametrize("hostile", ["", "a b", "x" * 129, "<script>", "id\\n", "ünïcode"])
    async def test_hostile_ids_are_replaced(self, hostile: str) -> None:
        async with _client(_starlette(RequestMetrics())) as client:
            response = await client.post("/things", headers=[(b"x-request-id", hostile.encode())])
        assert response.headers["x-request-id"] != hostile
        assert len(response.headers["x-request-id"]) == 16

    async def test_ids_are_generated_and_distinct(self) -> None:
        async with _client(_starlette(RequestMetrics(), trust_request_id=False)) as client:
            ids = {
                (await client.get("/items/1", headers={"X-Request-ID": "fixed"})).headers["x-request-id"]
                for _ in range(50)
            }
        assert len(ids) == 50
        assert "fixed" not in ids

    def test_a_forked_worker_does_not_repeat_its_parent_s_ids(self) -> None:
        middleware = _starlette(RequestMetrics(), trust_request_id=False)
        _next_id(middleware)  # the app is built and serving before the fork, as in a pre-forked server
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its next three ids and leave at once
            try:
                os.write(write_end, ",".join(_next_id(middleware) for _ in range(3)).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            child = pipe.read().decode().split(",")
        parent = [_next_id(middleware) for _ in range(3)]
        assert len(child) == 3
        assert not set(child) & set(parent)

    def test_a_forked_worker_counts_into_its_own_fresh_series(self, tmp_path: Path) -> None:
        metrics = RequestMetrics(multiprocess_dir=tmp_path)  # in multi-process mode a forked child starts afresh
        middleware = _starlette(metrics)
        for _ in range(3):
            _next_id(middleware)  # the parent has counted this label set (and may remember where)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                _next_id(middleware)
                counts = [sum(series.buckets) for series in metrics.series.values()]
                os.write(write_end, repr(counts).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            child_counts = pipe.read().decode()
        assert child_counts == "[1]", "the child's table holds its one request, not the parent's three"
        assert [sum(series.buckets) for series in metrics.series.values()] == [3]


def _next_id(app: ObservabilityMiddleware) -> str:
    """The request id `app` gives its next request (run on a loop of its own)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/items/1", "headers": [], "query_string": b""}
    asyncio.run(app(scope, receive, send))
    request_id: bytes = dict(sent[0]["headers"])[b"x-request-id"]
    return request_id.decode()


class TestServerTimingAndExposition:
    async def test_server_timing_reports_the_app_time(self) -> None:
        async with _client(_starlette(RequestMetrics())) as client:
            response = await client.get("/items/5")
        name, duration = response.headers["server-timing"].split(";")
        assert name == "app"
        assert float(duration.removeprefix("dur=")) >= 0

    async def test_server_timing_can_be_off(self) -> None:
        async with _client(_starlette(RequestMetrics(), server_timing=False)) as client:
            response = await client.get("/items/5")
        assert "server-timing" not in response.headers

    async def test_the_exposition_is_served_and_parses(self) -> None:
        metrics = RequestMetrics()
        async with _client(_starlette(metrics)) as client:
            await client.get("/items/1")
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["http_server_request_duration_seconds"].type == "histogram"
        assert ("GET", "/metrics", "2xx") not in metrics.series, "scrapes are not counted as traffic"

    async def test_other_scopes_pass_through(self) -> None:
        seen: list[str] = []

        async def app(scope: dict[str, object], receive: object, send: object) -> None:
            seen.append(str(scope["type"]))

        middleware = ObservabilityMiddleware(app, metrics=RequestMetrics())  # type: ignore[arg-type]
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        assert seen == ["lifespan"]


async def test_responses_the_router_never_saw_are_named_by_matching_the_routes() -> None:
    """A cache in front of the app answers without routing; with `routes` the metrics still name the route."""
    routes = [Route("/items/{ident:int}", PlainTextResponse), Route("/about", PlainTextResponse)]

    async def cache_hit(scope: Scope, receive: Receive, send: Send) -> None:  # answers without calling a router
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"cached"})

    for given, expected in ((routes, "/items/{ident}"), (None, "(unmatched)")):
        metrics = RequestMetrics()
        app = ObservabilityMiddleware(cache_hit, metrics=metrics, routes=given)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert (await client.get("/items/3")).text == "cached"
            assert (await client.get("/nowhere")).status_code == 200
        text = metrics.render()
        assert f'route="{expected}"' in text
        assert 'route="(unmatched)"' in text  # /nowhere matches no route either way
