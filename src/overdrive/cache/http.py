"""`HTTPCacheMiddleware`: an RFC 9111 shared cache for GET and HEAD responses, in front of any ASGI app.

What is stored: a GET response whose status is cacheable by default (200, 203, 204, 300, 301, 308, 404, 405, 410,
414, 501) *and* that carries explicit freshness (`s-maxage`, `max-age` or `Expires`) or `no-cache`. Heuristic
freshness (guessing a lifetime from `Last-Modified`) is never used: an app that says nothing is never cached.
Never stored: `no-store`, `private`, `Set-Cookie`, `Vary: *`, responses without `Content-Length` (streaming) or
larger than `max_body_size`, and responses to requests carrying `Authorization` (unless `public` or `s-maxage`) or
`Cookie` (unless `public`). A request with `Authorization` or `Cookie` is only ever *served* from an entry marked
the same way, so a stored answer, and a 304 derived from its validator, never crosses from one user to another.

Keys are the scheme, host, path and query; `Vary` adds the named request headers through a variant index: the
primary key holds either the response or a `Variants` record naming the headers, and the secondary key includes
their values. HEAD is answered from a stored GET (a HEAD miss goes to the app and is not stored).

Freshness is s-maxage over max-age over Expires; served responses carry `Age`. A stale entry within its
`stale-while-revalidate` window is served while one background request refreshes it; otherwise it is revalidated
with the app (`If-None-Match` with the app's own ETag; a 304 from the app refreshes the entry).

Conditional requests are answered by the middleware, never by the app: the client's `If-None-Match` is matched
(weak comparison, lists, `*`) against a stored 200 this request may be served, and the client's conditional headers
are removed from requests forwarded to the app, so the app always produces a full, storable answer.
`If-Modified-Since` is not evaluated (every stored 200 has an ETag, the app's own or a hash of the body).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from overdrive.cache._http_headers import (
    Headers,
    StoredResponse,
    Variants,
    cache_control,
    etag_matches,
    freshness_lifetime,
    http_date,
    parse_tags,
    revalidated,
    seconds,
    strong_etag,
)
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from overdrive.cache.core import Cache
    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HTTPCacheMetrics", "HTTPCacheMiddleware"]

log = logging.getLogger("overdrive.cache")

_CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9110 §15.4.5: a 304 repeats the fields a 200 would have sent among these.
_NOT_MODIFIED_FIELDS = frozenset({b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"})
_CONDITIONAL_FIELDS = frozenset({b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since"})
_DECODE_AS = StoredResponse | Variants


class HTTPCacheMetrics:
    """What an `HTTPCacheMiddleware` did since it was created.

    Attributes:
        hits: Requests answered from a fresh stored response (304s included).
        misses: Requests that found no usable stored response and went to the app.
        stale_served: Requests answered with a stale response inside its stale-while-revalidate window.
        revalidations: Stored responses revalidated with the app (`no-cache`, stale, or a request's `no-cache`).
        not_modified: 304 responses the middleware generated from a stored validator.
        coalesced_waits: Requests that waited for another request's app call to the same key.
        stored: Responses stored.
        uncacheable: Responses (or requests) not stored, by reason.

    """

    __slots__ = ("coalesced_waits", "hits", "misses", "not_modified", "revalidations", "stale_served", "stored",
                 "uncacheable")  # fmt: skip

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.stale_served = 0
        self.revalidations = 0
        self.not_modified = 0
        self.coalesced_waits = 0
        self.stored = 0
        self.uncacheable: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        """Count one response not stored for `reason`."""
        self.uncacheable[reason] = self.uncacheable.get(reason, 0) + 1

    def as_dict(self) -> dict[str, object]:
        """A snapshot of every counter, by name."""
        return {name: getattr(self, name) for name in self.__slots__} | {"uncacheable": dict(self.uncacheable)}


class HTTPCacheMiddleware:
    """A pure ASGI middleware that stores and serves HTTP responses with RFC 9111 semantics (see the module doc).

    Args:
        app: The ASGI app to cache.
        cache: Where responses are stored; its clock is the middleware's clock.
        max_body_size: Responses with a larger `Content-Length` pass through unstored.
        tag_header: The response header (case-insensitive) listing comma-separated tags for the stored response;
            it is stripped from every outgoing response. Purge with `purge_tags` or `cache.invalidate_tags`.
        keep_stale: Seconds a response is kept after its freshness and stale-while-revalidate windows end, so it
            can be revalidated with the app instead of fetched again.
        prefix: Prefixes every key the middleware writes in `cache`.

    Attributes:
        metrics: The counters (`HTTPCacheMetrics`).

    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: Cache,
        max_body_size: int = 1 << 20,
        tag_header: str = "cache-tag",
        keep_stale: float = 60.0,
        prefix: str = "http:",
    ) -> None:
        for name, value in (("max_body_size", max_body_size), ("keep_stale", keep_stale)):
            if value < 0:
                msg = f"HTTPCacheMiddleware's {name} cannot be negative; got {value}."
                raise ConfigurationError(msg)
        self.app = app
        self.cache = cache
        self.max_body_size = max_body_size
        self.tag_header = tag_header.lower().encode("latin-1")
        self.keep_stale = keep_stale
        self.prefix = prefix
        self.metrics = HTTPCacheMetrics()
        # Shared by design, not per-request state: coalescing works only if every request for a key sees the same
        # in-flight marker, and a background refresh must be started once per key, whichever request saw it stale.
        self._inflight: dict[str, asyncio.Event] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI connection: GET and HEAD through the cache, everything else straight to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in {"GET", "HEAD"}:
            await _Exchange(self, scope, receive, send).run()
        else:
            await self.app(scope, receive, _TagStripper(send, self.tag_header))

    async def purge_tags(self, *tags: str) -> None:
        """Drop every stored response carrying any of `tags`."""
        await self.cache.invalidate_tags(*tags)

    async def drain(self) -> None:
        """Wait for the running background refreshes (for a graceful shutdown, and for tests)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    def refresh(self, key: str, scope: Scope, stale: StoredResponse) -> None:
        """Start one background request refreshing `key`, unless one is running."""
        if key in self._refreshing:
            return
        exchange = _Exchange(self, {**scope, "method": "GET"}, _empty_request, _discard)
        task = asyncio.get_running_loop().create_task(exchange.fetch(stale))
        self._refreshing[key] = task
        task.add_done_callback(lambda done: self._refreshed(key, done))

    def _refreshed(self, key: str, task: asyncio.Task[None]) -> None:
        del self._refreshing[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("A background refresh of a cached response failed.", extra={"key": key}, exc_info=error)


class _TagStripper:
    """A `send` for responses passed on unstored: the tag header is removed from the response start."""

    __slots__ = ("send", "tag")

    def __init__(self, send: Send, tag: bytes) -> None:
        self.send = send
        self.tag = tag

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            tag = self.tag
            message = {**message, "headers": [h for h in message.get("headers", []) if h[0].lower() != tag]}
        await self.send(message)


async def _empty_request() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_message: Message) -> None:
    return None


def _request_headers(scope: Scope) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for raw, value in scope["headers"]:
        name = raw.lower()
        headers[name] = headers[name] + b", " + value if name in headers else value
    return headers


class _Exchange:
    """One request through the cache: the per-request state, never kept on the middleware."""

    def __init__(self, middleware: HTTPCacheMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.mw = middleware
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers = _request_headers(scope)
        self.directives = cache_control(self.headers.get(b"cache-control"))
        host = self.headers.get(b"host", b"").decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        self.primary = f"{middleware.prefix}{scope.get('scheme', 'http')}://{host}{scope['path']}?{query}"
        # Response capture state, used while the app answers.
        self.start: Message | None = None
        self.body: list[bytes] = []
        self.passing = False
        self.revalidating = False

    # -- the request path -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        metrics = self.mw.metrics
        if "no-store" in self.directives:
            metrics.skip("request_no_store")
            await self.mw.app(self.scope, self.receive, self.relay)
            return
        key, entry = await self.lookup()
        if entry is None or not self.may_serve(entry):
            metrics.misses += 1
            await self.fill(key, None)
            return
        now = self.mw.cache.clock()
        age = entry.age(now)
        if age < entry.lifetime and not entry.no_cache and not self.wants_revalidation(age):
            metrics.hits += 1
            await self.serve(entry, now)
        elif (
            age < entry.lifetime + entry.swr
            and not entry.no_cache
            and not entry.must_revalidate
            and not self.wants_revalidation(age)
        ):
            metrics.stale_served += 1
            self.mw.refresh(key, self.scope, entry)
            await self.serve(entry, now)
        else:
            metrics.revalidations += 1
            await self.fill(key, entry)

    def wants_revalidation(self, age: float) -> bool:
        """Whether the request's own Cache-Control asks to bypass a stored response this old."""
        if "no-cache" in self.directives:
            return True
        max_age = seconds(self.directives, "max-age")
        return max_age is not None and age > max_age

    def may_serve(self, entry: StoredResponse) -> bool:
        """Whether `entry` may answer this request: credentials only ever see responses marked shareable."""
        if b"authorization" in self.headers and not entry.shared_auth:
            return False
        return b"cookie" not in self.headers or entry.public

    async def lookup(self) -> tuple[str, StoredResponse | None]:
        """The key for this request and the response stored under it, following the variant index."""
        cache = self.mw.cache
        found = await cache.get(self.primary, decode_as=_DECODE_AS)
        if isinstance(found, Variants):
            key = self.variant_key(found.names)
            found = await cache.get(key, decode_as=_DECODE_AS)
        else:
            key = self.primary
        return key, found if isinstance(found, StoredResponse) else None

    def variant_key(self, names: tuple[str, ...]) -> str:
        """The secondary key: the primary key plus the values of the request headers the response varies on."""
        values = (self.headers.get(name.encode("latin-1"), b"").decode("latin-1").strip() for name in names)
        return self.primary + "\x00" + "\x1f".join(values)

    # -- going to the app -------------------------------------------------------------------------------------------

    async def fill(self, key: str, stale: StoredResponse | None) -> None:
        """Answer from the app, storing its response if allowed; concurrent GETs for `key` share one app call."""
        mw = self.mw
        if self.scope["method"] != "GET":
            await mw.app(self.scope, self.receive, self.relay)
            return
        event = mw._inflight.get(key)
        if event is None:
            event = mw._inflight[key] = asyncio.Event()
            try:
                await self.fetch(stale)
            finally:
                del mw._inflight[key]
                event.set()
            return
        mw.metrics.coalesced_waits += 1
        started = mw.cache.clock()
        await event.wait()
        key, entry = await self.lookup()
        if entry is not None and self.may_serve(entry):
            now = mw.cache.clock()
            # Revalidated (or stored) while this request waited: as good as fresh for it.
            if entry.stored_at >= started or (entry.age(now) < entry.lifetime and not entry.no_cache):
                await self.serve(entry, now)
                return
        # The leader's response was not stored (uncacheable, or for another user): never share it, ask the app.
        await self.fetch(entry if entry is not None and self.may_serve(entry) else None)

    async def fetch(self, stale: StoredResponse | None) -> None:
        """Call the app without the client's conditionals (to get a storable answer), then store and respond."""
        headers = [(name, value) for name, value in self.scope["headers"] if name.lower() not in _CONDITIONAL_FIELDS]
        if stale is not None and stale.origin_etag:
            headers.append((b"if-none-match", stale.etag.encode("latin-1")))
            self.revalidating = True
        elif stale is not None and (modified := next((v for n, v in stale.headers if n == b"last-modified"), None)):
            headers.append((b"if-modified-since", modified))
            self.revalidating = True
        scope = dict(self.scope)
        scope["headers"] = headers
        await self.mw.app(scope, self.receive, self.capture)
        if self.passing or self.start is None:
            return
        status: int = self.start["status"]
        response_headers = [(name.lower(), value) for name, value in self.start.get("headers", [])]
        now = self.mw.cache.clock()
        entry: StoredResponse | None
        if status == 304 and stale is not None:  # noqa: PLR2004 -- Not Modified
            entry = revalidated(stale, response_headers, now, self.mw.tag_header)
            fields = dict(entry.headers)
            veto = self.storage_veto(cache_control(fields.get(b"cache-control")), fields)
            if veto is not None:  # the app's new headers forbid storing: answer this request only
                self.mw.metrics.skip(veto)
                await self.serve(entry, now)
                return
        else:
            entry = self.make_entry(status, response_headers, b"".join(self.body), now)
            if entry is None:
                headers = [h for h in response_headers if h[0] != self.mw.tag_header]
                await self.send_raw(status, headers, b"".join(self.body))
                return
        await self.store(entry)
        await self.serve(entry, now)

    async def relay(self, message: Message) -> None:
        """A `send` for responses passed on unstored: only the tag header is removed."""
        await _TagStripper(self.send, self.mw.tag_header)(message)

    async def capture(self, message: Message) -> None:
        """The app's `send`: decide at the response start whether to buffer (storable) or pass the response on."""
        if self.passing:
            await self.send(message)
            return
        if message["type"] == "http.response.start":
            self.start = message
            reason = self.early_reason(message)
            if reason is not None:
                self.mw.metrics.skip(reason)
                self.passing = True
                await self.relay(message)
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))
        else:
            # Anything but plain body chunks (a pathsend, trailers): not a response this cache can hold.
            self.mw.metrics.skip("streaming")
            self.passing = True
            if self.start is not None:
                await self.relay(self.start)
            for chunk in self.body:
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self.send(message)

    def early_reason(self, start: Message) -> str | None:
        """Why a response can be known unstorable from its status and headers alone, or None."""
        status: int = start["status"]
        if status == 304 and self.revalidating:  # noqa: PLR2004 -- the app confirmed our stored response
            return None
        length = None
        for name, value in start.get("headers", []):
            if name.lower() == b"content-length":
                length = int(value) if value.isdigit() else None
        if status not in _CACHEABLE_STATUSES:
            return "status"
        if length is None:
            return "streaming"
        if length > self.mw.max_body_size:
            return "too_large"
        return None

    def make_entry(self, status: int, headers: Headers, body: bytes, now: float) -> StoredResponse | None:
        """The entry to store for a complete response, or None (counted by reason) when it may not be stored."""
        fields: dict[bytes, bytes] = {}
        for name, value in headers:
            fields[name] = fields[name] + b", " + value if name in fields else value
        cc = cache_control(fields.get(b"cache-control"))
        reason = self.storage_veto(cc, fields)
        if reason is None:
            lifetime = freshness_lifetime(cc, fields, now)
            if lifetime is None and "no-cache" not in cc:
                reason = "no_freshness"
        if reason is not None:
            self.mw.metrics.skip(reason)
            return None
        origin_etag = fields.get(b"etag")
        tag_header = self.mw.tag_header
        kept = [(n, v) for n, v in headers if n not in {tag_header, b"age"}]
        etag = origin_etag.decode("latin-1") if origin_etag is not None else ""
        if origin_etag is None and status == 200:  # noqa: PLR2004 -- only full representations get a body hash
            etag = strong_etag(body)
            kept.append((b"etag", etag.encode("latin-1")))
        age = fields.get(b"age", b"")
        return StoredResponse(
            status=status,
            headers=kept,
            body=body,
            stored_at=now,
            initial_age=float(age) if age.isdigit() else 0.0,
            lifetime=lifetime or 0.0,
            swr=seconds(cc, "stale-while-revalidate") or 0.0,
            no_cache="no-cache" in cc,
            must_revalidate="must-revalidate" in cc or "proxy-revalidate" in cc,
            public="public" in cc,
            shared_auth="public" in cc or "s-maxage" in cc,
            etag=etag,
            origin_etag=origin_etag is not None,
            tags=parse_tags(fields.get(tag_header, b"")),
        )

    def storage_veto(self, cc: dict[str, str], fields: dict[bytes, bytes]) -> str | None:
        """Why RFC 9111 §3 (and this cache's privacy rules) forbid storing the response, or None."""
        vetoes = (
            ("no_store", "no-store" in cc),
            ("private", "private" in cc),
            ("set_cookie", b"set-cookie" in fields),
            ("vary_star", any(part.strip() == b"*" for part in fields.get(b"vary", b"").split(b","))),
            ("authorization", b"authorization" in self.headers and "public" not in cc and "s-maxage" not in cc),
            ("cookie", b"cookie" in self.headers and "public" not in cc),
        )
        return next((reason for reason, vetoed in vetoes if vetoed), None)

    async def store(self, entry: StoredResponse) -> None:
        """Write `entry` (and the variant index when it varies) for as long as it can be served or revalidated."""
        mw = self.mw
        cache = mw.cache
        keep = max(entry.lifetime - entry.initial_age, 0.0) + entry.swr + mw.keep_stale
        if keep <= 0:
            mw.metrics.skip("expired")
            return
        ttl = keep / (1.0 - cache.freshness.jitter)  # jitter may only lengthen storage, never cut it short
        vary = b", ".join(v for n, v in entry.headers if n == b"vary").decode("latin-1")
        names = tuple(sorted({part.strip().lower() for part in vary.split(",")} - {""}))
        key = self.primary
        if names:
            await cache.set(key, Variants(names), ttl=ttl)
            key = self.variant_key(names)
        await cache.set(key, entry, ttl=ttl, tags=entry.tags)
        mw.metrics.stored += 1

    # -- responding -------------------------------------------------------------------------------------------------

    async def serve(self, entry: StoredResponse, now: float) -> None:
        """Send a stored response with its `Age`, or a 304 when the request's `If-None-Match` matches it."""
        age = (b"age", str(int(entry.age(now))).encode("latin-1"))
        if entry.status == 200 and self.not_modified(entry):  # noqa: PLR2004 -- only full representations
            self.mw.metrics.not_modified += 1
            headers = [(n, v) for n, v in entry.headers if n in _NOT_MODIFIED_FIELDS]
            await self.send_raw(304, [*headers, age], b"")
            return
        body = b"" if self.scope["method"] == "HEAD" else entry.body
        await self.send_raw(entry.status, [*entry.headers, age], body)

    def not_modified(self, entry: StoredResponse) -> bool:
        """Whether the request's validators match `entry` (RFC 9110 §13.2.2 order).

        ``If-None-Match`` decides when present (weak comparison, lists, ``*``); otherwise ``If-Modified-Since``
        on a GET or HEAD is honoured when the stored response carries ``Last-Modified`` no later than it.
        """
        condition = self.headers.get(b"if-none-match")
        if condition is not None:
            return etag_matches(condition, entry.etag)
        since = http_date(self.headers.get(b"if-modified-since"))
        if since is None or self.scope["method"] not in ("GET", "HEAD"):
            return False
        modified = http_date(next((v for n, v in entry.headers if n == b"last-modified"), None))
        return modified is not None and modified <= since

    async def send_raw(self, status: int, headers: Headers, body: bytes) -> None:
        """Send one complete response."""
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})
