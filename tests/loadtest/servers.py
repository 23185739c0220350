"""A loopback HTTP server with misbehaviours chosen by path, run in a thread, for testing the load engine.

Paths: ``/ok``, ``/chunked``, ``/close`` (Connection: close), ``/eof`` (HTTP/1.0 body ended by closing),
``/status/NNN``, ``/redirect`` (302, must not be followed), ``/reset`` (every third request on the server is
answered by resetting the connection), ``/hang`` (never answered), ``/garbage`` (not HTTP),
``/idle-close`` (the third request on a connection is answered by closing it, as a server's keep-alive limit does),
``/split`` (the response in two writes, cut inside the headers), ``/lower`` (lower-case header names),
``/counter`` (a body that differs every time), ``/early-hints`` (a 103 before the 200, in one write),
``/not-modified`` (a 304 whose Content-Length announces no body), ``/no-content`` (a 204).
The server counts requests per path, and the connections it closed unanswered.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.services import free_port

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
_EOF = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close"
_REDIRECT = b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n"
_LOWER = b"HTTP/1.1 200 OK\r\nserver: test\r\ncontent-LENGTH: 2\r\n\r\nok"
_EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + _OK
_NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n"
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_FIXED = {"/ok": _OK, "/chunked": _CHUNKED, "/redirect": _REDIRECT, "/lower": _LOWER,
          "/early-hints": _EARLY_HINTS, "/not-modified": _NOT_MODIFIED, "/no-content": _NO_CONTENT,
          "/garbage": b"NOT HTTP AT ALL\r\n\r\n", "/hang": b""}  # fmt: skip
_IDLE_CLOSE_AFTER = 2


class _Protocol(asyncio.Protocol):
    def __init__(self, server: MisbehavingServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            path = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            self.buffer = self.buffer[length:]
            if not self._answer(path):
                return

    def _answer(self, path: str) -> bool:
        assert self.transport is not None
        server = self.server
        server.counts[path] += 1
        if path in _FIXED:
            self.transport.write(_FIXED[path])
        elif path == "/counter":
            body = str(server.counts[path]).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path == "/split":
            cut = len(_OK) // 2
            self.transport.write(_OK[:cut])
            asyncio.get_running_loop().call_later(0.001, self.transport.write, _OK[cut:])
        elif path == "/idle-close":
            if self.answered == _IDLE_CLOSE_AFTER:
                server.closed_unanswered += 1
                self.transport.close()
                return False
            self.transport.write(_OK)
        elif path == "/close":
            self.transport.write(_CLOSE)
            self.transport.close()
            return False
        elif path == "/eof":
            self.transport.write(_EOF)
            self.transport.close()
            return False
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self.transport.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        elif path == "/reset":
            server.resets += 1
            if server.resets % 3 == 0:
                sock = self.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()
                return False
            self.transport.write(_OK)
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        self.answered += 1
        return True


class MisbehavingServer:
    """The server and its per-path request counts."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.resets = 0
        self.closed_unanswered = 0
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def misbehaving_server() -> Iterator[MisbehavingServer]:
    """Run the server on a loopback port in a background thread."""
    server = MisbehavingServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main() -> None:
        listener = await loop.create_server(lambda: _Protocol(server), "127.0.0.1", server.port, backlog=1024)
        ready.set()
        async with listener:
            await listener.serve_forever()

    def run() -> None:
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield server
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()
