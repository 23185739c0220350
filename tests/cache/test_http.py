"""HTTPCacheMiddleware: RFC 9111 storage rules, freshness, revalidation, 304s, coalescing and purging, driven through a
real Starlette app in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from overdrive.cache import Cache, HTTPCacheMiddleware
from overdrive.cache._http_headers import cache_control, freshness_lifetime, http_date, seconds
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock
from overdrive.types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio


class Origin:
    """The app behind the cache: answers what the test sets, echoes credentials into the body, counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.status = 200
        self.headers: dict[str, str] = {"cache-control": "max-age=60"}
        self.body: Callable[[Request], str] = lambda request: f"v{self.calls}"
        self.gate: asyncio.Event | None = None
        self.etag: str | None = None  # when set, the app answers a matching If-None-Match with its own 304
        self.last_modified: float | None = None  # when set, sent as Last-Modified and If-Modified-Since honoured
        self.seen: list[dict[str, str]] = []
        self.methods: list[str] = []
        self.fail_on: set[int] = set()  # the calls (1-based) that raise

    async def endpoint(self, request: Request) -> Response:
        self.calls += 1
        self.seen.append(dict(request.headers))
        self.methods.append(request.method)
        if self.gate is not None:
            await self.gate.wait()
        if self.calls in self.fail_on:
            msg = "The app failed."
            raise RuntimeError(msg)
        headers = dict(self.headers)
        if self.etag is not None:
            headers["etag"] = self.etag
            if request.headers.get("if-none-match") == self.etag:
                return Response(status_code=304, headers=headers)
        if self.last_modified is not None:
            headers["last-modified"] = formatdate(self.last_modified, usegmt=True)
            since = http_date(request.headers.get("if-modified-since", "").encode())
            if since is not None and self.last_modified <= since:
                return Response(status_code=304, headers=headers)
        return Response(self.body(request), status_code=self.status, headers=headers)

    async def stream(self, request: Request) -> Response:
        self.calls += 1

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(chunks(), headers={"cache-control": "max-age=60"})


def echo_user(request: Request) -> str:
    return f"user={request.headers.get('authorization') or request.headers.get('cookie') or 'anonymous'}"


async def settle(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds (bounded)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    msg = "The condition never held."
    raise AssertionError(msg)


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture
def middleware(origin: Origin, cache: Cache) -> HTTPCacheMiddleware:
    app = Starlette(
        routes=[Route("/stream", origin.stream), Route("/{path:path}", origin.endpoint, methods=["GET", "POST"])]
    )
    return HTTPCacheMiddleware(app, cache=cache, max_body_size=1000)


@pytest.fixture
async def client(middleware: HTTPCacheMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        yield client


class TestPrivacy:
    @pytest.mark.parametrize("header", ["authorization", "cookie"])
    async def test_credentialed_requests_are_never_shared(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, header: str
    ) -> None:
        """Two users behind Authorization or Cookie each get their own answer, every time, from the app."""
        origin.body = echo_user
        for _ in range(2):
            for user in ("alice", "bob"):
                response = await client.get("/me", headers={header: user})
                assert response.text == f"user={user}"
        assert origin.calls == 4
        assert middleware.metrics.uncacheable == {header: 4}

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({"cache-control": "max-age=60", "set-cookie": "sid=1"}, "set_cookie"),
            ({"cache-control": "private, max-age=60"}, "private"),
            ({"cache-control": "no-store, max-age=60"}, "no_store"),
            ({"cache-control": "max-age=60", "vary": "Accept, *"}, "vary_star"),
        ],
    )
    async def test_responses_that_forbid_storing_are_not_stored(
        self,
        client: httpx.AsyncClient,
        origin: Origin,
        middleware: HTTPCacheMiddleware,
        headers: dict[str, str],
        reason: str,
    ) -> None:
        origin.headers = headers
        first, second = await client.get("/p"), await client.get("/p")
        assert (first.text, second.text) == ("v1", "v2")
        assert middleware.metrics.uncacheable == {reason: 2}

    async def test_vary_keeps_one_variant_per_header_value(self, client: httpx.AsyncClient, origin: Origin) -> None:
        """Two users with different Accept-Language each get their language, from the cache on the second visit."""
        origin.headers = {"cache-control": "max-age=60", "vary": "Accept-Language"}
        origin.body = lambda request: f"lang={request.headers['accept-language']}:{origin.calls}"
        for _ in range(3):
            assert (await client.get("/p", headers={"accept-language": "en"})).text == "lang=en:1"
            assert (await client.get("/p", headers={"accept-language": "fr"})).text == "lang=fr:2"
        assert origin.calls == 2

    async def test_explicitly_public_responses_are_shared_across_credentials(
        self, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        origin.headers = {"cache-control": "public, max-age=60"}
        origin.body = echo_user
        assert (await client.get("/p", headers={"authorization": "alice"})).text == "user=alice"
        assert (await client.get("/p", headers={"cookie": "bob"})).text == "user=alice"
        assert (await client.get("/p")).text == "user=alice"
        assert origin.calls == 1

    async def test_s_maxage_shares_with_authorization_but_not_cookie(
        self, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        origin.headers = {"cache-control": "s-maxage=60"}
        origin.body = echo_user
        assert (await client.get("/p", headers={"authorization": "alice"})).text == "user=alice"
        assert (await client.get("/p", headers={"authorization": "bob"})).text == "user=alice"
        assert (await client.get("/p", headers={"cookie": "carol"})).text == "user=carol"

    @pytest.mark.parametrize("header", ["authorization", "cookie"])
    async def test_no_304_leaks_to_a_request_the_entry_may_not_serve(
        self, client: httpx.AsyncClient, origin: Origin, header: str
    ) -> None:
        """An anonymous answer's validator never short-circuits a credentialed request: the app decides."""
        origin.body = echo_user
        etag = (await client.get("/p")).headers["etag"]
        response = await client.get("/p", headers={header: "mallory", "if-none-match": etag})
        assert (response.status_code, response.text) == (200, "user=mallory")
        assert origin.calls == 2


class TestFreshness:
    async def test_a_fresh_response_is_served_with_its_age(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        assert (await client.get("/p")).headers["age"] == "0"
        clock.advance(42)
        response = await client.get("/p")
        assert (response.text, response.headers["age"]) == ("v1", "42")
        clock.advance(18)
        assert (await client.get("/p")).text == "v2"

    async def test_s_maxage_wins_over_max_age(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=100, s-maxage=10"}
        await client.get("/p")
        clock.advance(11)
        assert (await client.get("/p")).text == "v2"

    async def test_expires_counts_from_date(self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock) -> None:
        origin.headers = {"date": formatdate(clock(), usegmt=True), "expires": formatdate(clock() + 30, usegmt=True)}
        await client.get("/p")
        clock.advance(29)
        assert (await client.get("/p")).text == "v1"
        clock.advance(1)
        assert (await client.get("/p")).text == "v2"

    async def test_the_apps_age_counts_against_freshness(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=60", "age": "50"}
        await client.get("/p")
        clock.advance(5)
        assert (await client.get("/p")).headers["age"] == "55"
        clock.advance(5)
        assert (await client.get("/p")).text == "v2"

    @pytest.mark.parametrize(
        ("status", "headers", "reason"),
        [
            (200, {}, "no_freshness"),
            (500, {"cache-control": "max-age=60"}, "status"),
            (302, {"cache-control": "max-age=60", "location": "/x"}, "status"),
        ],
    )
    async def test_only_default_cacheable_statuses_with_explicit_freshness_are_stored(
        self,
        *,
        client: httpx.AsyncClient,
        origin: Origin,
        middleware: HTTPCacheMiddleware,
        status: int,
        headers: dict[str, str],
        reason: str,
    ) -> None:
        origin.status, origin.headers = status, headers
        await client.get("/p", follow_redirects=False)
        await client.get("/p", follow_redirects=False)
        assert origin.calls == 2
        assert middleware.metrics.uncacheable == {reason: 2}

    async def test_a_404_with_freshness_is_stored(self, client: httpx.AsyncClient, origin: Origin) -> None:
        origin.status = 404
        assert [(await client.get("/p")).status_code for _ in range(2)] == [404, 404]
        assert origin.calls == 1

    async def test_request_directives(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, clock: FakeClock
    ) -> None:
        """Request no-cache and an exceeded max-age go to the app; request no-store is neither served nor stored."""
        await client.get("/p")
        assert (await client.get("/p", headers={"cache-control": "no-cache"})).text == "v2"
        clock.advance(10)
        assert (await client.get("/p", headers={"cache-control": "max-age=5"})).text == "v3"
        assert (await client.get("/p", headers={"cache-control": "no-store"})).text == "v4"
        assert (await client.get("/p")).text == "v3"
        assert middleware.metrics.uncacheable == {"request_no_store": 1}


class TestRevalidation:
    async def test_no_cache_responses_are_revalidated_on_every_use(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        """The app is asked each time, with the stored ETag; its 304 lets the cache serve the stored body."""
        origin.headers = {"cache-control": "no-cache"}
        origin.etag = '"r1"'
        assert (await client.get("/p")).text == "v1"
        response = await client.get("/p")
        assert (response.status_code, response.text) == (200, "v1")
        assert origin.calls == 2
        assert origin.seen[1]["if-none-match"] == '"r1"'
        assert middleware.metrics.revalidations == 1

    async def test_a_stale_response_is_revalidated_and_its_age_restarts(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.etag = '"r1"'
        origin.headers = {"cache-control": "max-age=60", "cache-tag": "t"}
        await client.get("/p")
        clock.advance(61)
        response = await client.get("/p")
        assert (response.text, response.headers["age"], origin.calls) == ("v1", "0", 2)
        assert "cache-tag" not in response.headers
        clock.advance(30)
        assert (await client.get("/p")).headers["age"] == "30"
        assert origin.calls == 2

    async def test_a_changed_response_replaces_the_stored_one(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.etag = '"r1"'
        await client.get("/p")
        origin.etag = '"r2"'
        clock.advance(61)
        response = await client.get("/p")
        assert (response.text, response.headers["etag"]) == ("v2", '"r2"')

    async def test_a_304_that_now_forbids_storing_answers_this_request_only(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, clock: FakeClock
    ) -> None:
        origin.etag = '"r1"'
        await client.get("/p")
        clock.advance(61)
        origin.headers = {"cache-control": "no-store"}
        response = await client.get("/p")
        assert (response.text, response.headers["cache-control"]) == ("v1", "no-store")
        assert middleware.metrics.uncacheable == {"no_store": 1}
        await client.get("/p")
        assert origin.calls == 3

    async def test_an_invalid_expires_is_already_stale(self, client: httpx.AsyncClient, origin: Origin) -> None:
        origin.headers = {"expires": "soon"}
        await client.get("/p")
        assert (await client.get("/p")).text == "v2"


class TestStaleWhileRevalidate:
    async def test_stale_is_served_while_one_background_request_refreshes(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=10, stale-while-revalidate=30"}
        await client.get("/p")
        clock.advance(15)
        assert [(await client.get("/p")).text for _ in range(3)] == ["v1", "v1", "v1"]
        await middleware.drain()
        assert origin.calls == 2
        assert (await client.get("/p")).text == "v2"
        assert middleware.metrics.stale_served == 3

    async def test_a_stale_head_refreshes_with_a_get(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=10, stale-while-revalidate=30"}
        await client.get("/p")
        clock.advance(15)
        assert (await client.head("/p")).content == b""
        await middleware.drain()
        assert origin.methods == ["GET", "GET"]
        assert (await client.get("/p")).text == "v2"

    async def test_a_failed_refresh_is_logged_and_stale_is_still_served(
        self,
        client: httpx.AsyncClient,
        origin: Origin,
        middleware: HTTPCacheMiddleware,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        origin.headers = {"cache-control": "max-age=10, stale-while-revalidate=30"}
        origin.fail_on = {2}
        await client.get("/p")
        clock.advance(15)
        assert (await client.get("/p")).text == "v1"
        await middleware.drain()
        assert "background refresh" in caplog.text
        assert (await client.get("/p")).text == "v1"
        await middleware.drain()
        assert (await client.get("/p")).text == "v3"

    async def test_past_the_window_the_app_answers(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=10, stale-while-revalidate=30"}
        await client.get("/p")
        clock.advance(41)
        assert (await client.get("/p")).text == "v2"

    async def test_must_revalidate_disables_stale_serving(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.headers = {"cache-control": "max-age=10, stale-while-revalidate=30, must-revalidate"}
        await client.get("/p")
        clock.advance(15)
        assert (await client.get("/p")).text == "v2"


class TestConditional:
    async def test_a_generated_etag_answers_if_none_match_with_a_complete_304(
        self, client: httpx.AsyncClient, origin: Origin, clock: FakeClock
    ) -> None:
        origin.headers = {
            "cache-control": "max-age=60",
            "vary": "Accept-Encoding",
            "expires": formatdate(clock() + 60, usegmt=True),
            "date": formatdate(clock(), usegmt=True),
            "content-location": "/p.json",
            "content-type": "application/json",
        }
        first = await client.get("/p")
        etag = first.headers["etag"]
        assert etag.startswith('"')
        response = await client.get("/p", headers={"if-none-match": etag})
        assert (response.status_code, response.content) == (304, b"")
        for name in ("etag", "cache-control", "vary", "expires", "date", "content-location", "age"):
            assert response.headers[name] == first.headers[name], name
        assert "content-type" not in response.headers
        assert origin.calls == 1

    @pytest.mark.parametrize(
        ("condition", "status"),
        [('"a1"', 304), ('W/"a1"', 304), ('"x", W/"a1"', 304), ("*", 304), ('"x", "y"', 200)],
    )
    async def test_weak_comparison_and_lists(
        self, client: httpx.AsyncClient, origin: Origin, condition: str, status: int
    ) -> None:
        origin.headers = {"cache-control": "max-age=60", "etag": 'W/"a1"'}
        await client.get("/p")
        assert (await client.get("/p", headers={"if-none-match": condition})).status_code == status

    async def test_the_first_conditional_request_fills_the_cache_and_gets_a_304(
        self, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        """The app never sees the client's condition, so its full answer is stored; the client still gets a 304."""
        origin.headers = {"cache-control": "max-age=60", "etag": '"a1"'}
        response = await client.get("/p", headers={"if-none-match": '"a1"'})
        assert response.status_code == 304
        assert "if-none-match" not in origin.seen[0]
        assert (await client.get("/p")).text == "v1"

    @pytest.mark.parametrize(
        ("offset", "method", "extra", "status"),
        [
            (0, "GET", {}, 304),
            (3600, "GET", {}, 304),
            (-1, "GET", {}, 200),
            (0, "HEAD", {}, 304),
            (3600, "GET", {"if-none-match": '"other"'}, 200),  # If-None-Match decides when present
            (3600, "GET", {"if-none-match": "*"}, 304),
        ],
    )
    async def test_if_modified_since_against_the_stored_last_modified(  # noqa: PLR0917
        self, client: httpx.AsyncClient, origin: Origin, offset: int, method: str, extra: dict[str, str], status: int
    ) -> None:
        modified = 1_700_000_000.0
        origin.last_modified = modified
        await client.get("/p")
        headers = {"if-modified-since": formatdate(modified + offset, usegmt=True), **extra}
        response = await client.request(method, "/p", headers=headers)
        assert response.status_code == status
        assert origin.calls == 1

    async def test_a_malformed_if_modified_since_is_ignored(self, client: httpx.AsyncClient, origin: Origin) -> None:
        origin.last_modified = 1_700_000_000.0
        await client.get("/p")
        assert (await client.get("/p", headers={"if-modified-since": "yesterday"})).status_code == 200
        origin.last_modified = None
        await client.get("/q")
        stamp = formatdate(2_000_000_000.0, usegmt=True)
        assert (await client.get("/q", headers={"if-modified-since": stamp})).status_code == 200  # no Last-Modified

    async def test_a_stale_entry_without_etag_is_revalidated_with_if_modified_since(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, clock: FakeClock
    ) -> None:
        origin.last_modified = 1_700_000_000.0
        await client.get("/p")
        clock.advance(61)
        response = await client.get("/p")
        assert (response.status_code, response.text, response.headers["age"]) == (200, "v1", "0")
        assert origin.seen[1]["if-modified-since"] == formatdate(1_700_000_000.0, usegmt=True)
        assert "if-none-match" not in origin.seen[1]
        assert middleware.metrics.revalidations == 1


class TestHead:
    async def test_head_is_answered_from_a_stored_get(self, client: httpx.AsyncClient, origin: Origin) -> None:
        get = await client.get("/p")
        head = await client.head("/p")
        assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", get.headers["etag"])
        assert head.headers["content-length"] == "2"
        assert origin.calls == 1

    async def test_a_head_miss_goes_to_the_app_and_stores_nothing(
        self, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        await client.head("/p")
        assert (await client.get("/p")).text == "v2"


class TestCoalescing:
    async def test_concurrent_misses_make_one_app_call(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        origin.gate = asyncio.Event()
        requests = [asyncio.create_task(client.get("/p")) for _ in range(50)]
        await settle(lambda: middleware.metrics.coalesced_waits == 49)
        origin.gate.set()
        responses = await asyncio.gather(*requests)
        assert {response.text for response in responses} == {"v1"}
        assert origin.calls == 1

    async def test_an_uncacheable_answer_is_never_shared_with_waiters(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        """Each waiter runs the app itself when the leader's response turns out per-user (Set-Cookie)."""
        origin.gate = asyncio.Event()
        origin.headers = {"cache-control": "max-age=60", "set-cookie": "sid=x"}
        requests = [asyncio.create_task(client.get("/p")) for _ in range(10)]
        await settle(lambda: middleware.metrics.coalesced_waits == 9)
        origin.gate.set()
        responses = await asyncio.gather(*requests)
        assert len({response.text for response in responses}) == 10
        assert origin.calls == 10

    @pytest.mark.parametrize(
        ("header", "values", "response_headers"),
        [
            ("authorization", ["alice", "bob", "carol"], {"cache-control": "max-age=60"}),
            ("cookie", ["alice", "bob", "carol"], {"cache-control": "max-age=60"}),
            ("accept-language", ["en", "fr", "de"], {"cache-control": "max-age=60", "vary": "Accept-Language"}),
        ],
    )
    async def test_concurrent_requests_of_different_users_never_share_an_answer(
        self,
        *,
        client: httpx.AsyncClient,
        origin: Origin,
        middleware: HTTPCacheMiddleware,
        header: str,
        values: list[str],
        response_headers: dict[str, str],
    ) -> None:
        """Coalesced waiters of another user (or another variant) re-check, and get their own answer."""
        origin.gate = asyncio.Event()
        origin.headers = response_headers
        origin.body = lambda request: f"for={request.headers[header]}"
        chosen = [values[i % len(values)] for i in range(30)]
        requests = [asyncio.create_task(client.get("/p", headers={header: value})) for value in chosen]
        await settle(lambda: middleware.metrics.coalesced_waits == 29)
        origin.gate.set()
        responses = await asyncio.gather(*requests)
        assert [response.text for response in responses] == [f"for={value}" for value in chosen]

    async def test_a_failed_leader_releases_its_waiters_to_the_app(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        origin.gate = asyncio.Event()
        origin.fail_on = {1}
        requests = [asyncio.create_task(client.get("/p")) for _ in range(10)]
        await settle(lambda: middleware.metrics.coalesced_waits == 9)
        origin.gate.set()
        results = await asyncio.gather(*requests, return_exceptions=True)
        assert sum(isinstance(result, RuntimeError) for result in results) == 1
        assert sum(isinstance(result, httpx.Response) and result.status_code == 200 for result in results) == 9
        assert not middleware._inflight


class TestTags:
    async def test_tagged_responses_are_purged_and_the_tag_header_is_stripped(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware, cache: Cache
    ) -> None:
        origin.headers = {"cache-control": "max-age=60", "cache-tag": "product:42, category:3"}
        first = await client.get("/a")
        assert "cache-tag" not in first.headers
        origin.headers = {"cache-control": "max-age=60", "cache-tag": "product:7"}
        await client.get("/b")
        await middleware.purge_tags("product:42")
        assert (await client.get("/a")).text == "v3"
        assert (await client.get("/b")).text == "v2"
        await cache.invalidate_tags("product:7")
        assert (await client.get("/b")).text == "v4"

    async def test_the_tag_header_is_stripped_from_uncached_responses(
        self, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        origin.headers = {"cache-control": "no-store", "cache-tag": "secret-internal-tag"}
        assert "cache-tag" not in (await client.get("/p")).headers
        assert "cache-tag" not in (await client.post("/p")).headers


class TestBypass:
    async def test_streaming_responses_pass_through(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        assert [(await client.get("/stream")).text for _ in range(2)] == ["abc", "abc"]
        assert origin.calls == 2
        assert middleware.metrics.uncacheable == {"streaming": 2}

    async def test_bodies_over_the_limit_pass_through(
        self, client: httpx.AsyncClient, origin: Origin, middleware: HTTPCacheMiddleware
    ) -> None:
        origin.body = lambda request: "x" * 1001
        assert len((await client.get("/p")).text) == 1001
        await client.get("/p")
        assert middleware.metrics.uncacheable == {"too_large": 2}

    async def test_responses_with_other_messages_pass_through(self, cache: Cache) -> None:
        """A response that is not plain body chunks (here a pathsend) is relayed in order, unstored."""
        sent: list[Message] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            headers = [(b"content-length", b"3"), (b"cache-control", b"max-age=60"), (b"cache-tag", b"t")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.pathsend", "path": "/srv/static/x.bin"})

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            sent.append(message)

        middleware = HTTPCacheMiddleware(app, cache=cache)
        scope = {"type": "http", "method": "GET", "path": "/f", "headers": [(b"host", b"x")], "query_string": b""}
        await middleware(scope, receive, send)
        assert [message["type"] for message in sent] == [
            "http.response.start",
            "http.response.body",
            "http.response.pathsend",
        ]
        assert (b"cache-tag", b"t") not in sent[0]["headers"]
        assert middleware.metrics.uncacheable == {"streaming": 1}

    async def test_other_methods_go_straight_to_the_app(self, client: httpx.AsyncClient, origin: Origin) -> None:
        await client.get("/p")
        assert (await client.post("/p")).text == "v2"
        assert (await client.get("/p")).text == "v1"

    @pytest.mark.parametrize("options", [{"max_body_size": -1}, {"keep_stale": -1.0}])
    async def test_bad_options_are_refused(self, cache: Cache, options: dict[str, float]) -> None:
        with pytest.raises(ConfigurationError, match="cannot be negative"):
            HTTPCacheMiddleware(Starlette(), cache=cache, **options)  # type: ignore[arg-type]

    async def test_non_http_scopes_pass_through(self, cache: Cache) -> None:
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])

        async def receive() -> Message:
            return {"type": "lifespan.startup"}

        async def send(message: Message) -> None:
            return None

        middleware = HTTPCacheMiddleware(app, cache=cache)
        await middleware({"type": "lifespan"}, receive, send)
        await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
        assert seen == ["lifespan", "websocket"]


class TestMetricsAndTiers:
    async def test_counters(self, client: httpx.AsyncClient, middleware: HTTPCacheMiddleware) -> None:
        etag = (await client.get("/p")).headers["etag"]
        await client.get("/p")
        await client.get("/p", headers={"if-none-match": etag})
        snapshot = middleware.metrics.as_dict()
        assert {name: snapshot[name] for name in ("hits", "misses", "stored", "not_modified")} == {
            "hits": 2,
            "misses": 1,
            "stored": 1,
            "not_modified": 1,
        }

    async def test_stored_responses_survive_a_bytes_tier(self, origin: Origin, two_level: Cache) -> None:
        """Through an L2 tier (codec bytes, like Redis) the stored response and variant index decode back."""
        origin.headers = {"cache-control": "max-age=60", "vary": "Accept-Language"}
        app = Starlette(routes=[Route("/{path:path}", origin.endpoint, methods=["GET", "POST"])])
        transport = httpx.ASGITransport(app=HTTPCacheMiddleware(app, cache=two_level))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            await client.get("/p", headers={"accept-language": "en"})
            assert two_level.l1 is not None
            await two_level.l1.clear()
            response = await client.get("/p", headers={"accept-language": "en"})
        assert (response.text, origin.calls) == ("v1", 1)


class TestHeaderParsing:
    def test_cache_control_directives_are_lower_cased_with_unquoted_arguments(self) -> None:
        parsed = cache_control(b'Max-Age=60, PRIVATE, no-cache="Set-Cookie",, ')
        assert parsed == {"max-age": "60", "private": "", "no-cache": "Set-Cookie"}
        assert cache_control(None) == {}

    def test_malformed_delta_seconds_are_ignored(self) -> None:
        assert seconds({"max-age": "ten"}, "max-age") is None
        assert seconds({"max-age": "-1"}, "max-age") is None
        assert seconds({"max-age": "10"}, "max-age") == 10.0

    def test_dates(self) -> None:
        assert http_date(b"Thu, 01 Jan 1970 00:16:40 GMT") == 1000.0
        assert http_date(b"0") is None
        assert http_date(None) is None

    def test_a_malformed_max_age_counts_as_stale_at_once(self) -> None:
        assert freshness_lifetime({"max-age": "soon"}, {}, 0.0) == 0.0
        assert freshness_lifetime({}, {b"expires": b"Thu, 01 Jan 1970 00:16:50 GMT"}, 1000.0) == 10.0
