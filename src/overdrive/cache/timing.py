"""Per-request cache timing: how long a request waited on the cache past its memory tier, for Server-Timing.

    app = CacheTimingMiddleware(app, cache)  # adds  Server-Timing: cache;dur=3.10;desc="1 L2 reads, 1 loads"

A memory-tier hit costs well under a microsecond and is not counted. What is counted is where a request waits:
reads from the shared tier (Redis; a wait for another caller's read of the same key included) and loads (a wait
for another caller's load of the same key included), and `seconds` is their summed time. Only those slow paths
read the request's timing (one ContextVar read), so the L1 hit path costs nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overdrive.cache.core import Cache
    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CacheTiming", "CacheTimingMiddleware"]


class CacheTiming:
    """What one request (or `with cache.timing():` block) spent in the cache past its memory tier."""

    __slots__ = ("l2_reads", "loads", "seconds")

    def __init__(self) -> None:
        self.l2_reads = 0
        self.loads = 0
        self.seconds = 0.0

    def server_timing(self, name: str = "cache") -> bytes:
        """A ``Server-Timing`` entry: ``cache;dur=<ms>;desc="<n> L2 reads, <m> loads"``."""
        return b'%s;dur=%.2f;desc="%d L2 reads, %d loads"' % (
            name.encode(),
            self.seconds * 1000,
            self.l2_reads,
            self.loads,
        )


class _Responder:
    __slots__ = ("name", "send", "timing")

    def __init__(self, timing: CacheTiming, send: Send, name: str) -> None:
        self.timing = timing
        self.send = send
        self.name = name

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers")
            if not isinstance(headers, list):
                headers = message["headers"] = list(headers or ())
            headers.append((b"server-timing", self.timing.server_timing(self.name)))
        await self.send(message)


class CacheTimingMiddleware:
    """Times each HTTP request's cache use past L1 and reports it in ``Server-Timing`` (pure ASGI).

    Args:
        app: the ASGI application.
        cache: the `Cache` the app reads through.
        name: the Server-Timing metric name.

    """

    def __init__(self, app: ASGIApp, cache: Cache, *, name: str = "cache") -> None:
        self.app = app
        self.cache = cache
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside a cache timing scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.cache.timing() as timing:
            await self.app(scope, receive, _Responder(timing, send, self.name))
