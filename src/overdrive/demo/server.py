"""Run the shop app as a real server process (uvicorn or granian) and wait until it answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from tempfile import TemporaryFile
from typing import IO, TYPE_CHECKING, Literal, assert_never, get_args

import httpx

from overdrive.exceptions import ServerStartError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from overdrive.demo.settings import ShopSettings

__all__ = ["DEFAULT_SERVER", "SERVERS", "RunningServer", "ServerName", "free_port", "serve", "server_command"]

ServerName = Literal["uvicorn", "granian"]
SERVERS: tuple[ServerName, ...] = get_args(ServerName)
DEFAULT_SERVER: ServerName = "granian"  # measured: BENCHMARKS.md, "Server choice"
APP_FACTORY = "overdrive.demo.app:create_app_from_env"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(server: ServerName, host: str, port: int) -> list[str]:
    """The command line that serves the shop app factory with one worker on `server`."""
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", APP_FACTORY, "--factory", "--host", host, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if server == "granian":
        return [
            sys.executable, "-m", "granian", APP_FACTORY, "--factory", "--interface", "asgi", "--host", host,
            "--port", str(port), "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
        ]  # fmt: skip
    assert_never(server)


@dataclass(frozen=True)
class RunningServer:
    """A started server: its process and base URL."""

    process: subprocess.Popen[bytes]
    base_url: str
    server: ServerName


@contextlib.contextmanager
def serve(
    settings: ShopSettings,
    *,
    server: ServerName = DEFAULT_SERVER,
    host: str = "127.0.0.1",
    port: int | None = None,
    cpus: Sequence[int] = (),
    ready_timeout_s: float = 60.0,
) -> Iterator[RunningServer]:
    """Start the shop app in its own process, yield once `/healthz` answers 200, and stop it on exit.

    Raises:
        ServerStartError: the process exited, or did not answer in `ready_timeout_s`; the message carries the
            end of its output.

    """
    port = port or free_port(host)
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with TemporaryFile() as log:
        process = subprocess.Popen(server_command(server, host, port), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if cpus and hasattr(os, "sched_setaffinity"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(process.pid, set(cpus))
            base_url = f"http://{host}:{port}"
            _wait_ready(process, base_url, ready_timeout_s, log)
            yield RunningServer(process, base_url, server)
        finally:
            _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, timeout_s: float, log: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"The shop server exited with status {process.returncode} before it was ready:\n{_tail(log)}"
            raise ServerStartError(msg)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:  # noqa: PLR2004
                return
        time.sleep(0.1)
    msg = f"The shop server did not answer {base_url}/healthz within {timeout_s:g} s:\n{_tail(log)}"
    raise ServerStartError(msg)


def _tail(log: IO[bytes], size: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-size:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
