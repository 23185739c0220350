"""Per-request cache timing: only calls past the memory tier count; the middleware reports them in Server-Timing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.cache import Cache, CacheTimingMiddleware, MemoryTier
from overdrive.types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio


async def test_only_l2_reads_and_loads_are_timed() -> None:
    cache = Cache(MemoryTier(100))
    loads = 0

    @cache.cached(ttl=60)
    async def slow(x: int) -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.02)
        return x * 2

    with cache.timing() as timing:
        assert await slow(1) == 2  # a miss: the load is timed
        assert await slow(1) == 2  # an L1 hit: not counted
        assert await cache.get_or_load("k", lambda: asyncio.sleep(0.01, result="v")) == "v"
    assert loads == 1
    assert (timing.l2_reads, timing.loads) == (0, 2)  # no L2 here; the L1 hit after the first load is not counted
    assert timing.seconds >= 0.03
    assert await slow(2) == 4  # outside any scope: nothing recorded anywhere
    assert timing.loads == 2
    assert timing.server_timing().startswith(b"cache;dur=")
    assert timing.server_timing().endswith(b'desc="0 L2 reads, 2 loads"')


async def test_the_middleware_adds_a_server_timing_entry_per_request() -> None:
    cache = Cache(MemoryTier(100))

    @cache.cached(ttl=60)
    async def product(ident: int) -> str:
        await asyncio.sleep(0.005)
        return f"product {ident}"

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await product(int(request.path_params["ident"])))

    app = CacheTimingMiddleware(Starlette(routes=[Route("/p/{ident}", endpoint)]), cache)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        cold = await client.get("/p/1")
        warm = await client.get("/p/1")
    assert cold.text == warm.text == "product 1"
    assert cold.headers["server-timing"].endswith('desc="0 L2 reads, 1 loads"')
    assert warm.headers["server-timing"] == 'cache;dur=0.00;desc="0 L2 reads, 0 loads"'

    seen: list[str] = []

    async def other(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await CacheTimingMiddleware(other, cache, name="c")({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


@pytest.mark.integration
async def test_l2_reads_are_counted_against_real_redis(redis_url: str) -> None:
    from overdrive.cache import RedisTier

    tier = RedisTier.from_url(redis_url, prefix="timing-test:", timeout=1.0)
    writer, reader = Cache(MemoryTier(10), tier), Cache(MemoryTier(10), tier)
    try:
        await writer.set("k", "stored")
        with reader.timing() as timing:
            assert await reader.get_or_load("k", lambda: asyncio.sleep(0, result="loaded")) == "stored"
        assert (timing.l2_reads, timing.loads) == (1, 0)
        assert timing.seconds > 0
    finally:
        for cache in (writer, reader):
            await cache.aclose()
        await tier.aclose()
