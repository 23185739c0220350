"""The hot path of a load worker: one asyncio Protocol per connection, httptools parsing, no await per request.

A response completes inside the protocol's callbacks, which record its latency and, in the closed model, write the
next request on the same connection at once: no Task, Future or coroutine per request. Request bytes were built
before the run (`Scenario.prepare`), so sending is one `transport.write`. In the closed model a read that repeats
a plain 200 byte for byte is not even parsed (`ClosedConnection`).

Times are `perf_counter_ns` integers. In the open model each request carries its *intended* send time, fixed by the
arrival schedule before anything is sent; latency is measured from that time (so a stalled server shows in the
figures instead of silently slowing the generator down), and the service time from the actual send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import httptools

from overdrive.loadtest.histogram import Histogram

_NS_PER_US = 1_000
_RECONNECT_DELAY_S = 0.05
_REPEAT_MAX = 4_096  # longer reads are never remembered as possible repeats: one page per connection at most
_TALLY_US = 8_192  # the closed model counts latencies below this many microseconds in a plain list (see WindowStats)


class WindowStats:
    """What one worker measured during one reporting window (normally one second)."""

    __slots__ = ("errors", "latency", "ok", "service", "statuses", "tally", "transport_errors")

    def __init__(self, names: int, *, open_model: bool) -> None:
        self.latency = [Histogram() for _ in range(names)]
        self.service = [Histogram() for _ in range(names)] if open_model else None
        self.errors = [0] * names
        self.ok = [0] * names  # 200s, counted apart: a list increment is cheaper than a dict update
        # The closed model's inline 200s: `tally[name][latency_us] += 1` is a fraction of a `record` call; `fold`
        # moves the counts into `latency` and `ok` when the window is taken.
        self.tally = [] if open_model else [[0] * _TALLY_US for _ in range(names)]
        self.statuses: list[dict[int, int]] = [{} for _ in range(names)]
        self.transport_errors: dict[str, int] = {}

    def fold(self) -> None:
        """Move the tallied 200s into the latency histograms and the 200 counts."""
        for name, tally in enumerate(self.tally):
            self.ok[name] += self.latency[name].record_tally(tally)
        self.tally = []

    def status_counts(self) -> list[dict[int, int]]:
        """Responses per status code, for each request name."""
        merged = [dict(counts) for counts in self.statuses]
        for counts, ok in zip(merged, self.ok, strict=True):
            if ok:
                counts[200] = counts.get(200, 0) + ok
        return merged

    def transport_error(self, kind: str) -> None:
        """Count a request or connection that failed below HTTP (refused, reset, timed out, unparsable)."""
        self.transport_errors[kind] = self.transport_errors.get(kind, 0) + 1


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; callbacks go straight to the engine."""

    __slots__ = (
        "busy", "data_received", "done", "engine", "intended", "mid", "name", "parser", "sent_at", "status",
        "transport",
    )  # fmt: skip

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.done = engine.completed
        self.parser = httptools.HttpResponseParser(self)
        # The loop calls the parser directly: no Python frame per read. A parse error then escapes to the loop,
        # which closes the transport and hands the error to `connection_lost` (counted as an invalid response).
        self.data_received = self.parser.feed_data  # type: ignore[method-assign]
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.mid = False  # the parser holds part of a response
        self.status = 0
        self.name = 0
        self.sent_at = 0
        self.intended = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.engine.connected(self)

    def on_message_begin(self) -> None:
        self.mid = True

    def on_message_complete(self) -> None:
        # The status is read here rather than from an on_headers_complete callback: one Python call per response
        # fewer. A body delimited by the connection's close ends in `connection_lost`, which reads it there.
        self.mid = False
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:  # noqa: PLR2004 - an interim response (103 Early Hints): the real one follows
            return
        self.status = status
        self.done(self, parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.lost(self, exc)


class Engine:
    """Shared machinery of both load models: connections, the request ring, timeouts, windows."""

    connection_class: type[Connection] = Connection

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ring: list[tuple[int, bytes]],
        names: int,
        open_model: bool,
        timeout_ns: int,
        max_requests: int | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.next_request = itertools.cycle(ring).__next__  # (name, bytes) of the ring, round and round
        self.names = names
        self.open_model = open_model
        self.window = WindowStats(names, open_model=open_model)
        self.timeout_ns = timeout_ns
        self.limit = max_requests if max_requests is not None else -1  # stop once `sent` reaches it
        self.sent = 0
        self.connections: set[Connection] = set()
        self.connecting = 0
        self.opened = 0
        self.stopping = self.limit == 0
        self.drained = asyncio.Event()

    # ----------------------------------------------------------------- connections
    def open_connection(self) -> None:
        """Start one connection in the background; failures are counted and retried by the model."""
        self.connecting += 1
        self.loop.create_task(self._open())

    async def _open(self) -> None:
        try:
            await self.loop.create_connection(lambda: self.connection_class(self), self.host, self.port)
        except OSError as exc:
            self.connecting -= 1
            self.window.transport_error(_kind(exc))
            if not self.stopping:
                await asyncio.sleep(_RECONNECT_DELAY_S)
                self.connection_failed()
        else:
            self.connecting -= 1

    def connected(self, conn: Connection) -> None:
        """A connection is up: put it to work."""
        self.connections.add(conn)
        self.opened += 1
        if self.stopping:
            conn.transport.close()  # type: ignore[union-attr]
        else:
            self.idle(conn)

    def lost(self, conn: Connection, exc: BaseException | None) -> None:
        """A connection closed: finish or fail its request, then replace it unless the run is over."""
        self.connections.discard(conn)
        if conn.busy:
            # A response cut short may still be whole: an HTTP/1.0 body ends with the connection.
            conn.status = conn.parser.get_status_code() if conn.mid else 0
            if conn.status and exc is None:
                self.completed(conn, keep_alive=False)  # a body delimited by the connection's close
                self.connections.discard(conn)
            else:
                conn.busy = False
                self.window.transport_error(_lost_kind(exc))
        if not self.stopping:
            self.replace_connection()
        self._maybe_drained()

    def check_timeouts(self) -> None:
        """Abort connections whose request has waited longer than the timeout."""
        deadline = perf_counter_ns() - self.timeout_ns
        for conn in list(self.connections):
            if conn.busy and conn.sent_at < deadline:
                conn.busy = False
                self.window.transport_error("timeout")
                conn.transport.abort()  # type: ignore[union-attr]

    # ----------------------------------------------------------------- requests
    def send(self, conn: Connection, intended: int) -> None:
        """Write the next request of the ring on `conn`."""
        conn.name, request = self.next_request()
        conn.status = 0
        conn.busy = True
        now = perf_counter_ns()
        conn.sent_at = now
        conn.intended = intended or now
        self.sent += 1
        if self.sent == self.limit:
            self.stopping = True
        conn.transport.write(request)  # type: ignore[union-attr]

    def completed(self, conn: Connection, keep_alive: bool) -> None:  # noqa: FBT001 - hot path
        """Record a finished response, then give the connection its next job."""
        if not conn.busy:
            return
        now = perf_counter_ns()
        conn.busy = False
        window = self.window
        name = conn.name
        status = conn.status
        window.latency[name].record((now - conn.intended) // _NS_PER_US)
        if window.service is not None:
            window.service[name].record((now - conn.sent_at) // _NS_PER_US)
        if status == 200:  # noqa: PLR2004
            window.ok[name] += 1
        else:
            counts = window.statuses[name]
            counts[status] = counts.get(status, 0) + 1
            if status >= 400:  # noqa: PLR2004
                window.errors[name] += 1
        if not keep_alive:
            conn.transport.close()  # type: ignore[union-attr]
        elif self.stopping:
            self._maybe_drained()
        else:
            self.idle(conn)

    def take_window(self) -> WindowStats:
        """Hand over the current window's figures and start a fresh one."""
        window, self.window = self.window, WindowStats(self.names, open_model=self.open_model)
        window.fold()
        return window

    def in_flight(self) -> int:
        """Requests sent and not yet finished."""
        return sum(1 for conn in self.connections if conn.busy)

    def stop(self) -> None:
        """Send nothing more; `drained` is set once nothing is in flight."""
        self.stopping = True
        self._maybe_drained()

    def close_all(self) -> int:
        """Close every connection; returns how many requests were still unanswered."""
        unanswered = self.in_flight()
        for conn in list(self.connections):
            conn.busy = False
            conn.transport.close()  # type: ignore[union-attr]
        return unanswered

    def _maybe_drained(self) -> None:
        if self.stopping and not self.drained.is_set() and self.in_flight() == 0:
            self.drained.set()

    # ----------------------------------------------------------------- model hooks
    def idle(self, conn: Connection) -> None:
        """A connection is free: the model decides what it does next."""
        raise NotImplementedError

    def replace_connection(self) -> None:
        """A connection went away during the run."""
        self.open_connection()

    def connection_failed(self) -> None:
        """Opening a connection failed; by default, try again."""
        self.open_connection()


class ClosedConnection(Connection):
    """A closed-model connection: a 200 on a kept-alive connection is recorded and followed, all inline.

    This is the closed model's whole per-request cost, so it avoids every call it can: the work is done here (no
    call into the engine), the latency is tallied in a list rather than recorded in a histogram, and one clock
    reading both ends this request and stamps the next one (so a latency includes the few hundred nanoseconds of
    this bookkeeping). Closes, other statuses and the end of the run take the generic path, `Engine.completed`.

    Most servers under load answer one request with the same bytes every time (a fixed page, a health check; the
    date changes once a second). A read that repeats, byte for byte, a response already found to be a plain 200
    (see `plain_ok`) is that response again, so it is answered without parsing; every other read goes to
    httptools. The repeat is only trusted between responses (`mid`), where parsing starts afresh.
    """

    __slots__ = ("last", "last_checked", "repeat")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.data_received = self.receive  # type: ignore[method-assign]
        self.repeat = b""  # a read known to be one whole plain 200
        self.last = b""  # the previous read, if it began a response and was short
        self.last_checked = False  # `last` was checked already (so it is not a plain 200, or is `repeat`)

    def receive(self, data: bytes) -> None:
        """Take one read from the loop."""
        if not self.mid:
            if data == self.repeat:
                self._ok()
                return
            if data != self.last:
                self.last = data if len(data) <= _REPEAT_MAX else b""
                self.last_checked = False
            elif not self.last_checked:  # the same bytes twice running: worth checking once
                self.last_checked = True
                if plain_ok(data):
                    self.repeat = data
                    self._ok()
                    return
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.mid = False
        parser = self.parser
        status = parser.get_status_code()
        if status == 200 and parser.should_keep_alive():  # noqa: PLR2004
            self._ok()
        elif status >= 200:  # noqa: PLR2004 - below, an interim response (103 Early Hints): the real one follows
            self.status = status
            Engine.completed(self.engine, self, parser.should_keep_alive())

    def _ok(self) -> None:
        """A 200 on a kept-alive connection: record it and send the next request."""
        engine = self.engine
        if engine.stopping or not self.busy:
            self.status = 200
            Engine.completed(engine, self, True)  # noqa: FBT003 - hot path, positional
            return
        now = perf_counter_ns()
        name = self.name
        latency_us = (now - self.sent_at) // _NS_PER_US
        if latency_us < _TALLY_US:
            engine.window.tally[name][latency_us] += 1
        else:
            window = engine.window
            window.latency[name].record(latency_us)
            window.ok[name] += 1
        self.name, request = engine.next_request()
        sent = engine.sent = engine.sent + 1
        if sent == engine.limit:
            engine.stopping = True
        # Both stamps, always: the generic path measures from `intended`, and a later response on this connection
        # (a 201, a 404) may take it.
        self.sent_at = self.intended = now
        self.transport.write(request)  # type: ignore[union-attr]


def plain_ok(data: bytes) -> bool:
    """Whether `data`, parsed from the start of a response, is exactly one whole 200 that keeps the connection.

    Deliberately narrower than HTTP: ``HTTP/1.1 200``, CRLF line ends only, one Content-Length of plain digits and
    exactly that much body, no Transfer-Encoding or Upgrade, and a Connection header (if any) of ``keep-alive``.
    Anything else is left to httptools, which also parsed these bytes once before they are trusted.
    """
    end = data.find(b"\r\n\r\n")
    head = data[:end]
    if end < 0 or not head.count(b"\r") == head.count(b"\n") == head.count(b"\r\n"):  # a CR or LF alone
        return False
    status, *fields = head.split(b"\r\n")
    if status != b"HTTP/1.1 200" and not status.startswith(b"HTTP/1.1 200 "):
        return False
    length = -1
    for field in fields:
        name, colon, value = field.partition(b":")
        value = value.strip(b" \t")
        if not colon or not name or name != name.strip():  # also refuses a folded line, which starts with a space
            return False
        name = name.lower()
        if name == b"content-length":
            if length >= 0 or not value.isdigit():
                return False
            length = int(value)
        elif name in {b"transfer-encoding", b"upgrade"} or (name == b"connection" and value.lower() != b"keep-alive"):
            return False
    return length >= 0 and len(data) == end + 4 + length


class ClosedEngine(Engine):
    """Closed model: a fixed number of connections, each sending its next request as soon as one is answered."""

    connection_class = ClosedConnection

    def start(self, connections: int) -> None:
        """Open the connections; each starts sending once it is up."""
        for _ in range(connections):
            self.open_connection()

    def idle(self, conn: Connection) -> None:
        """Send the next request at once."""
        self.send(conn, 0)


class OpenEngine(Engine):
    """Open model: requests are due at scheduled times whatever the server does; connections grow to keep up."""

    def __init__(self, *, max_connections: int, max_backlog: int, late_ns: int, **kwargs: Any) -> None:
        super().__init__(open_model=True, **kwargs)
        self.max_connections = max_connections
        self.max_backlog = max_backlog
        self.late_ns = late_ns
        self.free: list[Connection] = []
        self.backlog: deque[int] = deque()
        self.late = 0
        self.dropped = 0

    def start(self, connections: int) -> None:
        """Open the initial connections."""
        for _ in range(connections):
            self.open_connection()

    def idle(self, conn: Connection) -> None:
        """Serve the oldest waiting request, or park the connection."""
        if self.backlog and not self.stopping:
            self._dispatch(conn, self.backlog.popleft())
        else:
            self.free.append(conn)

    def lost(self, conn: Connection, exc: BaseException | None) -> None:
        """Forget a closed connection's free-list entry too."""
        with contextlib.suppress(ValueError):
            self.free.remove(conn)
        super().lost(conn, exc)

    def replace_connection(self) -> None:
        """Reopen only if requests wait for a connection."""
        if self.backlog:
            self.open_connection()

    def connection_failed(self) -> None:
        """Retry while requests wait."""
        if self.backlog:
            self.open_connection()

    def due(self, intended: int) -> None:
        """A request is due now (its intended time has come): send it, queue it, or drop it."""
        if self.stopping:
            return
        if self.free:
            self._dispatch(self.free.pop(), intended)
            return
        if len(self.backlog) >= self.max_backlog:
            self.dropped += 1
            return
        self.backlog.append(intended)
        if len(self.connections) + self.connecting < self.max_connections:
            self.open_connection()

    def _dispatch(self, conn: Connection, intended: int) -> None:
        if perf_counter_ns() - intended > self.late_ns:
            self.late += 1
        self.send(conn, intended)

    def stop(self) -> None:
        """Stop: requests still waiting for a connection are counted as dropped."""
        self.dropped += len(self.backlog)
        self.backlog.clear()
        super().stop()


def _lost_kind(exc: BaseException | None) -> str:
    if exc is None:
        return "connection closed"
    if isinstance(exc, httptools.HttpParserError):
        return "invalid response"
    return "connection reset"


def quiet_parse_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Loop exception handler: parse errors are counted by the engine; anything else is reported as usual."""
    if isinstance(context.get("exception"), httptools.HttpParserError):
        return
    loop.default_exception_handler(context)


def _kind(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "connect timeout"
    return f"connect error ({exc.strerror or type(exc).__name__})"


ScheduleFn = Callable[[int], int]
