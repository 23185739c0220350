"""QueryScopeMiddleware and testing.assert_queries on a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, selectinload
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from overdrive.db import QueryMonitor, QueryScopeMiddleware
from overdrive.testing import assert_queries
from overdrive.types import Message, Receive, Scope, Send
from tests.db.n1models import AUTHORS, Author, Base, make_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session, session.begin():
        session.add_all(make_rows())
    yield engine
    await engine.dispose()


async def test_each_request_gets_its_own_scope_and_a_server_timing_entry(engine: AsyncEngine) -> None:
    monitor = QueryMonitor(n_plus_one="record")
    monitor.instrument(engine)
    seen: list[tuple[int, int]] = []

    async def authors(request: Request) -> JSONResponse:
        count = int(request.query_params.get("n", "1"))
        async with AsyncSession(engine) as session:
            for _ in range(count):
                await session.execute(sa.select(sa.func.count()).select_from(Author))
        scope = monitor.current
        assert scope is not None
        seen.append((scope.queries, len(scope.findings)))
        return JSONResponse({"ok": True})

    app = QueryScopeMiddleware(Starlette(routes=[Route("/authors", authors)]), monitor)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        one = await client.get("/authors", params={"n": 1})
        many = await client.get("/authors", params={"n": 7})
    assert seen == [(1, 0), (7, 1)]
    assert one.headers["server-timing"].startswith("db;dur=")
    assert one.headers["server-timing"].endswith('desc="1 queries"')
    assert many.headers["server-timing"].endswith('desc="7 queries"')
    assert monitor.current is None
    monitor.uninstrument()


async def test_server_timing_can_be_turned_off_and_other_scopes_pass_through(engine: AsyncEngine) -> None:
    monitor = QueryMonitor()
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(str(scope["type"]))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": ()})
            await send({"type": "http.response.body", "body": b""})

    wrapped = QueryScopeMiddleware(app, monitor, server_timing=False)
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    assert response.status_code == 204
    assert "server-timing" not in response.headers

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await wrapped({"type": "lifespan"}, receive, send)
    assert calls == ["http", "lifespan"]
    monitor = QueryMonitor()
    wrapped = QueryScopeMiddleware(app, monitor)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://test") as client:
        response = await client.get("/")
    assert response.headers["server-timing"] == 'db;dur=0.00;desc="0 queries"'


def test_assert_queries_passes_fixed_code_and_fails_an_n_plus_one(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(make_rows())
    with Session(engine) as session:
        with assert_queries(engine, max=2) as scope:
            authors = session.scalars(sa.select(Author).options(selectinload(Author.books))).all()
            assert sum(len(a.books) for a in authors) == AUTHORS * 3
        assert scope.queries == 2
    with Session(engine) as session, pytest.raises(AssertionError) as failed, assert_queries(engine, max=5):  # noqa: PT012
        for author in session.scalars(sa.select(Author)).all():
            _ = author.books
    message = str(failed.value)
    assert f"{AUTHORS + 1} queries were sent, at most 5 allowed." in message
    assert "Author.books is lazy-loaded" in message
    assert "Statements sent:" in message
    assert __file__ in message
    with (
        Session(engine) as session,
        pytest.raises(AssertionError, match="exactly 3 expected"),
        assert_queries(engine, exactly=3, no_n_plus_one=False),
    ):
        session.execute(sa.select(Author.id)).all()
    monitor = QueryMonitor(n_plus_one="record")
    monitor.instrument(engine)
    with Session(engine) as session, assert_queries(monitor, exactly=1):
        session.execute(sa.select(Author.id)).all()
    monitor.uninstrument()
    with Session(engine) as session, assert_queries(engine, exactly=0):
        pass
    engine.dispose()
