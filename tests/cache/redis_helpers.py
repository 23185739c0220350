"""Helpers for the tests that run the cache on a real Redis: unique prefixes, cleanup, server processes."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import redis as syncredis

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]


def unique_prefix() -> str:
    """A key prefix no other test run uses, so tests sharing one Redis never collide."""
    return f"odtest:{uuid.uuid4().hex[:12]}:"


def purge(url: str, prefix: str) -> None:
    """Remove every key under `prefix`."""
    with syncredis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.unlink(*keys)


def server_pid(url: str) -> int:
    """The process id of the Redis server at `url`."""
    with syncredis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """Freeze a process (SIGSTOP) for the block: it keeps its connections but answers nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def peer_command(*args: str) -> list[str]:
    """The command line running `tests/cache/peer.py` with `args` in a separate Python process."""
    return [sys.executable, str(ROOT / "tests" / "cache" / "peer.py"), *args]


def peer_env() -> dict[str, str]:
    """The environment of a peer process: this checkout's sources first on the path."""
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
