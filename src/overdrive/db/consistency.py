"""Read-your-writes across requests: a signed token carries the client's last write position to its next request.

    router = ReplicaRouter(primary=engine, replicas=[replica])
    app = ReadYourWritesMiddleware(app, router=router, secret=settings.token_secret)

On the way in the middleware reads the token from the cookie (or the header), and opens `ReplicaRouter.track` with
its WAL position as the floor, so every routed session of the request reads from the primary, or from a replica that
has replayed that far. On the way out, when a write committed during the request before the response started, it
sends a new token: a cookie (``Max-Age``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``) and a response header of the
same value, for clients that echo headers rather than keep cookies. Tokens live ``max_age`` seconds, which must cover
``max_lag_seconds``: after that, replicas lagging within the allowed limit have replayed the write anyway.

A token that fails verification (tampered, truncated, signed with another secret, as after a secret rotation) is not
simply ignored: its holder may have just written, and ignoring it could show them stale data. It is treated as a
write at an unknown position: reads go to the primary, and the client gets a fresh token saying so, which keeps it on
the primary for ``max_age`` seconds, the longest any real token could have mattered, and then expires. An expired
token is dropped silently. Forged tokens therefore buy nothing but primary reads, which a write would buy too.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from overdrive.db._lsn import UNKNOWN_LSN
from overdrive.db._token import TokenCodec
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from overdrive.db.replicas import ConsistencyScope, ReplicaRouter
    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ReadYourWritesMiddleware"]

DEFAULT_COOKIE = "overdrive_ryw"
DEFAULT_HEADER = "x-overdrive-ryw"


class ReadYourWritesMiddleware:
    """Pure ASGI middleware that carries read-your-writes tokens between a client's requests.

    Args:
        app: The ASGI application.
        router: The router whose sessions the application uses.
        secret: The HMAC key for tokens, at least 16 bytes, shared by every server behind the same clients.
        cookie: The cookie's name; None to neither read nor set a cookie.
        header: The request and response header's name; None to neither read nor send it.
        max_age: Seconds a token keeps its holder's reads at its write position.
        secure: Add ``Secure`` to the cookie (HTTPS-only sites).
        clock: Unix seconds; injectable for tests.

    Raises:
        ConfigurationError: The secret is too short, both transports are off, or ``max_age`` is shorter than the
            router's ``max_lag_seconds``.

    """

    __slots__ = ("_codec", "_cookie", "_cookie_attributes", "_header", "app", "clock", "max_age", "router")

    def __init__(
        self,
        app: ASGIApp,
        *,
        router: ReplicaRouter,
        secret: bytes | str,
        cookie: str | None = DEFAULT_COOKIE,
        header: str | None = DEFAULT_HEADER,
        max_age: float = 10.0,
        secure: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cookie is None and header is None:
            msg = "Read-your-writes tokens need a cookie or a header to travel in; both are None."
            raise ConfigurationError(msg)
        if router.max_lag_seconds is not None and max_age < router.max_lag_seconds:
            msg = (
                f"max_age ({max_age} s) must be at least the router's max_lag_seconds ({router.max_lag_seconds} s), "
                "or a token could expire while a replica the router still uses has not replayed its write."
            )
            raise ConfigurationError(msg)
        self.app = app
        self.router = router
        self.max_age = max_age
        self.clock = clock
        self._codec = TokenCodec(secret)
        self._cookie = None if cookie is None else cookie.encode("latin-1")
        self._header = None if header is None else header.lower().encode("latin-1")
        attributes = f"; Max-Age={math.ceil(max_age)}; Path=/; HttpOnly; SameSite=Lax"
        self._cookie_attributes = (attributes + "; Secure" if secure else attributes).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one request inside a consistency scope opened at its token's position."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        floor, suspect = self._floor(scope["headers"])
        with self.router.track(floor) as state:
            responder = _Responder(self, send, state, reissue=suspect)
            await self.app(scope, receive, responder.send)

    def _floor(self, headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
        """The WAL floor the request's token asks for, and whether the token failed verification."""
        raw = self._token_text(headers)
        if raw is None:
            return None, False
        token = self._codec.decode(raw)
        if token is None:
            return UNKNOWN_LSN, True
        if self.clock() - token.issued_at >= self.max_age:
            return None, False
        return token.lsn, False

    def _token_text(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        for name, value in headers:
            if name == self._header:
                return value.decode("latin-1")
        if self._cookie is None:
            return None
        for name, value in headers:
            if name == b"cookie" and self._cookie in value:
                found = _cookie_value(value, self._cookie)
                if found is not None:
                    return found
        return None

    def headers_for(self, lsn: int) -> list[tuple[bytes, bytes]]:
        """The response headers that hand the client a token for a write at ``lsn``, issued now."""
        token = self._codec.encode(lsn, self.clock()).encode("ascii")
        headers = []
        if self._cookie is not None:
            headers.append((b"set-cookie", self._cookie + b"=" + token + self._cookie_attributes))
        if self._header is not None:
            headers.append((self._header, token))
        return headers


class _Responder:
    """Adds a new token to one response when its request wrote or brought a token that failed verification."""

    __slots__ = ("_middleware", "_reissue", "_send", "_state")

    def __init__(
        self, middleware: ReadYourWritesMiddleware, send: Send, state: ConsistencyScope, *, reissue: bool
    ) -> None:
        self._middleware = middleware
        self._send = send
        self._state = state
        self._reissue = reissue

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and (self._state.wrote or self._reissue):
            floor = self._state.floor
            lsn = UNKNOWN_LSN if floor is None else floor
            message["headers"] = [*message.get("headers", ()), *self._middleware.headers_for(lsn)]
        await self._send(message)


def _cookie_value(header: bytes, name: bytes) -> str | None:
    for pair in header.split(b";"):
        key, sep, value = pair.strip().partition(b"=")
        if sep and key == name:
            return value.strip(b'"').decode("latin-1")
    return None
