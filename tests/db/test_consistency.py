"""ReadYourWritesMiddleware carries a client's last write position to its next request, and survives tampering.

The integration tests drive a small ASGI app over a real primary and streaming replica through httpx's ASGI
transport; a client with the token reads its write from the primary while the replica's replay is paused, a client
without it reads the stale replica.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from overdrive.db import ReadYourWritesMiddleware, ReplicaRouter
from overdrive.db._lsn import UNKNOWN_LSN
from overdrive.db._token import TokenCodec
from overdrive.exceptions import ConfigurationError
from overdrive.testing import FakeClock
from overdrive.types import ASGIApp, Receive, Scope, Send
from tests.db.replication import IN_RECOVERY, Note, NoteBase, replay_paused, url
from tests.services import ReplicaPair

pytestmark = pytest.mark.anyio

SECRET = b"read-your-writes-test-secret"
COOKIE = "overdrive_ryw"
HEADER = "x-overdrive-ryw"


def notes_app(router: ReplicaRouter, *, probe_recovery: bool = True) -> ASGIApp:
    """POST /notes/<body> stores a note; GET /notes/<body> says whether it is visible and who answered."""
    sessions = router.async_sessionmaker()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = scope["path"].rsplit("/", 1)[-1]
        async with sessions() as session:
            if scope["method"] == "POST":
                session.add(Note(body=body))
                await session.commit()
                payload: dict[str, object] = {"written": body}
            else:
                found = await session.scalar(sa.select(Note.id).where(Note.body == body)) is not None
                replica = await session.scalar(IN_RECOVERY) if probe_recovery else None
                payload = {"found": found, "replica": replica}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    return app


@dataclass
class Site:
    router: ReplicaRouter
    app: ReadYourWritesMiddleware
    clock: FakeClock

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")


@pytest.fixture
async def site(replica_pair: ReplicaPair) -> AsyncIterator[Site]:
    primary = create_async_engine(url(replica_pair.primary_url, "asyncpg"))
    replica = create_async_engine(url(replica_pair.replica_url, "asyncpg"), pool_pre_ping=True)
    router = ReplicaRouter(primary=primary, replicas=[replica], max_lag_bytes=None, max_lag_seconds=None)
    clock = FakeClock()
    app = ReadYourWritesMiddleware(notes_app(router), router=router, secret=SECRET, max_age=10, clock=clock)
    try:
        yield Site(router, app, clock)
    finally:
        await primary.dispose()
        await replica.dispose()


def body() -> str:
    return uuid.uuid4().hex


@pytest.mark.integration
class TestAcrossRequests:
    async def test_a_write_hands_out_a_token_that_keeps_the_next_reads_on_the_primary(
        self, site: Site, replica_pair: ReplicaPair
    ) -> None:
        note = body()
        async with site.client() as writer, site.client() as stranger:
            with replay_paused(replica_pair):
                written = await writer.post(f"/notes/{note}")
                cookie = written.headers["set-cookie"]
                assert cookie.startswith(f"{COOKIE}=")
                assert "; Max-Age=10; Path=/; HttpOnly; SameSite=Lax" in cookie
                assert written.headers[HEADER] == writer.cookies[COOKIE]
                for _ in range(3):
                    assert (await writer.get(f"/notes/{note}")).json() == {"found": True, "replica": False}
                # Proof the replica is stale: a client without the token reads it there and misses the note.
                assert (await stranger.get(f"/notes/{note}")).json() == {"found": False, "replica": True}
            await site.router.refresh_async()
            assert (await writer.get(f"/notes/{note}")).json() == {"found": True, "replica": True}

    async def test_reads_alone_set_no_token(self, site: Site) -> None:
        async with site.client() as client:
            response = await client.get(f"/notes/{body()}")
        assert "set-cookie" not in response.headers
        assert HEADER not in response.headers

    async def test_the_header_carries_the_token_for_clients_without_cookies(
        self, site: Site, replica_pair: ReplicaPair
    ) -> None:
        note = body()
        async with site.client() as client:
            with replay_paused(replica_pair):
                token = (await client.post(f"/notes/{note}")).headers[HEADER]
                client.cookies.clear()
                answer = await client.get(f"/notes/{note}", headers={HEADER: token})
                assert answer.json() == {"found": True, "replica": False}
                assert (await client.get(f"/notes/{note}")).json() == {"found": False, "replica": True}

    async def test_an_expired_token_no_longer_keeps_reads_on_the_primary(
        self, site: Site, replica_pair: ReplicaPair
    ) -> None:
        note = body()
        async with site.client() as client:
            with replay_paused(replica_pair):
                await client.post(f"/notes/{note}")
                site.clock.advance(9.9)
                assert (await client.get(f"/notes/{note}")).json() == {"found": True, "replica": False}
                site.clock.advance(0.1)
                assert (await client.get(f"/notes/{note}")).json() == {"found": False, "replica": True}


@pytest.mark.integration
class TestTampering:
    @pytest.mark.parametrize(
        "forge",
        [
            pytest.param(lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), id="altered-mac"),
            pytest.param(lambda token: token[:10], id="truncated"),
            pytest.param(lambda token: "not a token at all", id="garbage"),
            pytest.param(
                lambda token: TokenCodec(b"another-secret-0123456789").encode(0, 1_000_000.0), id="foreign-secret"
            ),
        ],
    )
    async def test_a_forged_token_means_the_primary_for_max_age_then_the_replica(
        self, site: Site, replica_pair: ReplicaPair, forge: object
    ) -> None:
        note = body()
        async with site.client() as client:
            with replay_paused(replica_pair):
                token = (await client.post(f"/notes/{note}")).headers[HEADER]
                client.cookies.clear()
                client.cookies.set(COOKIE, forge(token), domain="testserver.local")  # type: ignore[operator]
                answer = await client.get(f"/notes/{note}")
                assert answer.json() == {"found": True, "replica": False}
                reissued = TokenCodec(SECRET).decode(client.cookies[COOKIE])
                assert reissued is not None
                assert reissued.lsn == UNKNOWN_LSN
                assert reissued.issued_at == site.clock()
                assert (await client.get(f"/notes/{note}")).json() == {"found": True, "replica": False}
                site.clock.advance(10)
                assert (await client.get(f"/notes/{note}")).json() == {"found": False, "replica": True}

    async def test_a_token_moved_to_a_lower_position_fails_verification(self, site: Site) -> None:
        token = TokenCodec(SECRET).encode(5_000_000, site.clock())
        raw = bytearray(token.encode())
        raw[4] = ord("A") if raw[4] != ord("A") else ord("B")
        async with site.client() as client:
            response = await client.get(f"/notes/{body()}", headers={HEADER: raw.decode()})
        assert response.json()["replica"] is False
        reissued = TokenCodec(SECRET).decode(response.headers[HEADER])
        assert reissued is not None
        assert reissued.lsn == UNKNOWN_LSN


class TestWithoutReplicas:
    @pytest.fixture
    async def sqlite_site(self, tmp_path: Path) -> AsyncIterator[Site]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'notes.sqlite3'}")
        async with engine.begin() as conn:
            await conn.run_sync(NoteBase.metadata.create_all)
        router = ReplicaRouter(primary=engine)
        clock = FakeClock()
        app = ReadYourWritesMiddleware(
            notes_app(router, probe_recovery=False), router=router, secret=SECRET, clock=clock
        )
        try:
            yield Site(router, app, clock)
        finally:
            await engine.dispose()

    async def test_sqlite_writes_need_no_token_and_get_none(self, sqlite_site: Site) -> None:
        note = body()
        async with sqlite_site.client() as client:
            written = await client.post(f"/notes/{note}")
            assert "set-cookie" not in written.headers
            assert (await client.get(f"/notes/{note}")).json() == {"found": True, "replica": None}

    async def test_non_http_scopes_pass_straight_through(self) -> None:
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])

        router = ReplicaRouter(primary=sa.create_engine("sqlite://"))
        middleware = ReadYourWritesMiddleware(app, router=router, secret=SECRET)

        async def receive() -> dict[str, object]:
            return {"type": "lifespan.startup"}

        async def send(message: object) -> None:
            raise AssertionError

        await middleware({"type": "lifespan"}, receive, send)
        assert seen == ["lifespan"]

    async def test_the_token_is_read_from_any_cookie_header_position(self, sqlite_site: Site) -> None:
        token = TokenCodec(SECRET).encode(42, sqlite_site.clock())
        headers = [(b"cookie", b"a=1; " + COOKIE.encode() + b"x=2"), (b"cookie", f'b=3; {COOKIE}="{token}"'.encode())]
        assert sqlite_site.app._floor(headers) == (42, False)
        assert sqlite_site.app._floor([(b"cookie", b"a=1")]) == (None, False)


class TestConfiguration:
    def router(self) -> ReplicaRouter:
        return ReplicaRouter(primary=sa.create_engine("sqlite://"), max_lag_seconds=30)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    def test_max_age_must_cover_the_allowed_lag(self) -> None:
        with pytest.raises(ConfigurationError, match=r"max_age \(10 s\) must be at least"):
            ReadYourWritesMiddleware(self.app, router=self.router(), secret=SECRET, max_age=10)

    def test_a_token_needs_a_way_to_travel(self) -> None:
        with pytest.raises(ConfigurationError, match="need a cookie or a header"):
            ReadYourWritesMiddleware(
                self.app, router=self.router(), secret=SECRET, cookie=None, header=None, max_age=30
            )

    def test_the_secret_must_be_long_enough(self) -> None:
        with pytest.raises(ConfigurationError, match="at least 16 bytes"):
            ReadYourWritesMiddleware(self.app, router=self.router(), secret="short", max_age=30)  # noqa: S106 -- the point of the test

    def test_secure_cookies_say_so(self) -> None:
        middleware = ReadYourWritesMiddleware(
            self.app, router=self.router(), secret=SECRET, max_age=30, secure=True, header=None
        )
        ((name, value),) = middleware.headers_for(7)
        assert name == b"set-cookie"
        assert value.endswith(b"; Max-Age=30; Path=/; HttpOnly; SameSite=Lax; Secure")
