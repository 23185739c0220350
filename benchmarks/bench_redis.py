"""Shared by the cache benchmarks: a private redis-server pinned to a core, and command counts from its stats.

Counting uses ``INFO commandstats`` deltas (no MONITOR, no CONFIG RESETSTAT): a snapshot before and after a run.
On a private server the deltas are exactly the benchmark's commands; on a shared one they include other clients'.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from collections.abc import Iterator

# Commands the benchmark itself sends to read or reset the server: never charged to a contender.
OWN_COMMANDS = frozenset({"info", "flushdb", "ping", "client|setname", "client|setinfo", "hello", "select"})


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(core: int = 0, db: int = 9) -> Iterator[str]:
    """Run a redis-server with no persistence pinned to `core`; yields its URL on database `db`."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    args = ["taskset", "-c", str(core), shutil.which("redis-server") or "redis-server", "--port", str(port)]
    args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir, "--maxclients", "10000"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/{db}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def command_counts(client: redis.Redis) -> Counter[str]:
    """Calls per command name so far (``INFO commandstats``), subcommands as ``client|setname``."""
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()})


def delta(after: Counter[str], before: Counter[str]) -> Counter[str]:
    """Commands run between two snapshots, without the benchmark's own bookkeeping commands."""
    changed = after - before
    for name in OWN_COMMANDS:
        changed.pop(name, None)
    return changed


def server_version(client: redis.Redis) -> str:
    """The server's version string."""
    return str(client.info("server")["redis_version"])
