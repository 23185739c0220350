"""A test server for the coordinated-omission self-test: answers in about 1 ms, except for one stall.

From `stall_after_s` seconds after its first request, the server holds every response for `stall_s` seconds (as a
stop-the-world pause would), then answers everything at once and carries on. Under an open-model load at rate R
over T seconds, the requests that arrive during the stall wait between 0 and `stall_s`, uniformly, so the latency
distribution has a known tail: with stalled share f = stall_s / T, the p-th percentile (for p > 1 - f) is
``stall_s * (1 - (1 - p) / f)``. A closed-model run against the same server sees only as many slow requests as it
has connections, and reports a tail that hides the stall.

Run it as ``python -m overdrive.loadtest.stallserver PORT [STALL_AFTER_S] [STALL_S] [SERVICE_MS]``; with a stall
that never comes (a large STALL_AFTER_S) it is a steady server of known service time, for A/B tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["StallServer", "expected_percentile", "main", "running"]

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
_SERVICE_S = 0.001


def expected_percentile(p: float, *, stall_s: float, duration_s: float, service_s: float = _SERVICE_S) -> float:
    """The analytic p-th percentile (p in 0..100) of open-model latency, in seconds, for one stall in a run."""
    share = stall_s / duration_s
    tail = 1 - p / 100
    if tail >= share:
        return service_s
    return stall_s * (1 - tail / share) + service_s


class StallServer(asyncio.Protocol):
    """The server's protocol; one instance per connection, sharing the clock in `state`."""

    def __init__(self, state: dict[str, float]) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to answer on."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Schedule an answer for every complete request head received (bodies are not expected)."""
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            now = time.monotonic()
            state = self.state
            if state["first"] == 0:
                state["first"] = now
            stall_start = state["first"] + state["after"]
            stall_end = stall_start + state["stall"]
            delay = state["service"] + (stall_end - now if stall_start <= now < stall_end else 0.0)
            loop.call_later(delay, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_RESPONSE)


async def serve(port: int, stall_after_s: float, stall_s: float, service_s: float = _SERVICE_S) -> None:
    """Serve on 127.0.0.1:`port` until cancelled or sent SIGTERM."""
    state = {"first": 0.0, "after": stall_after_s, "stall": stall_s, "service": service_s}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StallServer(state), "127.0.0.1", port, backlog=4096)
    serving = asyncio.ensure_future(server.serve_forever())
    loop.add_signal_handler(signal.SIGTERM, serving.cancel)  # a clean exit on terminate()
    with contextlib.suppress(asyncio.CancelledError):
        await serving


@contextlib.contextmanager
def running(
    stall_after_s: float, stall_s: float, *, service_ms: float = _SERVICE_S * 1000, cpus: Sequence[int] = ()
) -> Iterator[str]:
    """Run the server in a child process on a free loopback port; yield its URL once it accepts connections.

    Readiness is checked by connecting only, so the first HTTP request the server sees, and so the start of its
    stall clock, is the caller's. With `cpus`, the process is pinned to those cores.

    Raises:
        RuntimeError: the server did not accept connections within 20 s.

    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    args = [str(port), repr(stall_after_s), repr(stall_s), repr(service_ms)]
    with subprocess.Popen([sys.executable, "-m", "overdrive.loadtest.stallserver", *args]) as process:
        try:
            if cpus and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(process.pid, set(cpus))
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        msg = f"The stall server on port {port} did not start."
                        raise RuntimeError(msg) from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/"
        finally:
            process.terminate()
            process.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``PORT [STALL_AFTER_S] [STALL_S] [SERVICE_MS]``."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 4:  # noqa: PLR2004
        usage = "usage: python -m overdrive.loadtest.stallserver PORT [STALL_AFTER_S] [STALL_S] [SERVICE_MS]"
        print(usage, file=sys.stderr)  # noqa: T201
        return 2
    port = int(args[0])
    after = float(args[1]) if len(args) > 1 else 2.0
    stall = float(args[2]) if len(args) > 2 else 1.0  # noqa: PLR2004
    service = float(args[3]) / 1000 if len(args) > 3 else _SERVICE_S  # noqa: PLR2004
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(port, after, stall, service))
    except ImportError:  # pragma: no cover
        asyncio.run(serve(port, after, stall, service))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
