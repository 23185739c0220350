"""Structured JSON logs written off the event loop: structlog and the stdlib `logging`, one output.

`configure_logging` points structlog at a bounded buffer drained by one background thread (see `_writer`), and
bridges the stdlib root logger into the same buffer, so ``structlog.get_logger().info(...)`` and
``logging.getLogger(...).info(...)`` both become one orjson line each, carrying the same request context
(whatever is bound through `structlog.contextvars`). A log call renders the line and appends it to the buffer; it
never waits on the sink. The returned `StructuredLogs` owns the buffer and the thread; closing it flushes (for a
bounded time) and restores the previous structlog and stdlib configuration, so configuring is reversible.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final, cast

import structlog
from structlog.contextvars import merge_contextvars
from structlog.processors import format_exc_info

from overdrive.observability._render import render_json
from overdrive.observability._writer import BackgroundWriter, Sink
from overdrive.observability.context import merge_request_context

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

    from structlog.typing import EventDict, Processor, WrappedLogger

    from overdrive.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FlushLogsOnShutdown", "Sink", "StructuredLogs", "active_logs", "configure_logging"]

DROPS_EVENT: Final = "log lines dropped"
# What every LogRecord carries; anything else on a record came from `extra=` and becomes a field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def configure_logging(
    sink: Sink | str | os.PathLike[str] | None = None,
    *,
    level: int | str = logging.INFO,
    capacity: int = 10_000,
    flush_timeout: float = 5.0,
    processors: Iterable[Processor] = (),
    capture_stdlib: bool = True,
    cache_loggers: bool = False,
) -> StructuredLogs:
    """Send structlog (and, by default, stdlib `logging`) through one off-loop JSON-lines writer.

    Calling it again first closes the configuration it made before, so tests can configure freely.

    Args:
        sink: a binary file-like object, or a path to append to (opened and closed by us); default stdout.
        level: the lowest level written (a `logging` level or its name).
        capacity: lines buffered while the sink is slow; past it, new lines are dropped and counted.
        flush_timeout: the longest `close` and the lifespan hook wait for the sink.
        processors: extra structlog processors, run after the context is merged and before rendering.
        capture_stdlib: bridge the root stdlib logger into the same output.
        cache_loggers: let structlog cache bound loggers (faster calls, but loggers bound before a
            reconfiguration keep writing to the closed writer, where their lines are counted as dropped).

    Returns:
        The owner of the writer thread: close it (or use it as a context manager) to flush and restore.

    """
    if isinstance(level, str):
        named = logging.getLevelNamesMapping().get(level.upper())
        if named is None:
            msg = f"Unknown log level {level!r}; use a logging level or its name, such as 'info'."
            raise ValueError(msg)
        level = named
    if capacity < 1:
        msg = f"The log buffer needs room for at least one line, not {capacity}."
        raise ValueError(msg)
    previous = active_logs()
    if previous is not None:
        previous.close()
    return StructuredLogs(
        sink,
        level=level,
        capacity=capacity,
        flush_timeout=flush_timeout,
        processors=tuple(processors),
        capture_stdlib=capture_stdlib,
        cache_loggers=cache_loggers,
    )


def active_logs() -> StructuredLogs | None:
    """The configuration `configure_logging` made that structlog currently uses, if any."""
    factory = structlog.get_config()["logger_factory"]
    return factory.owner if isinstance(factory, _QueueLoggerFactory) else None


class StructuredLogs:
    """The active logging configuration: the buffer, its writer thread and what to restore on close.

    Build it with `configure_logging`.
    """

    def __init__(
        self,
        sink: Sink | str | os.PathLike[str] | None,
        *,
        level: int,
        capacity: int,
        flush_timeout: float,
        processors: tuple[Processor, ...],
        capture_stdlib: bool,
        cache_loggers: bool,
    ) -> None:
        self.flush_timeout = flush_timeout
        self._level = level
        self._extra_processors = processors
        self._owned: IO[bytes] | None = None
        if sink is None:
            sink = sys.stdout.buffer
        elif isinstance(sink, str | os.PathLike):
            sink = self._owned = open(sink, "ab")  # noqa: SIM115, PTH123 -- held open until close()
        self.writer = BackgroundWriter(sink, capacity=capacity, report_drops=self._drops_line)
        self._previous = structlog.get_config()
        self._previous["processors"] = list(self._previous["processors"])
        chain: list[Processor] = [
            merge_contextvars,
            merge_request_context,
            _add_timestamp,
            format_exc_info,
            *processors,
        ]
        self._chain = chain
        structlog.configure(
            processors=[structlog.processors.add_log_level, *chain, render_json],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=_QueueLoggerFactory(self),
            cache_logger_on_first_use=cache_loggers,
        )
        self._bridge: _StdlibBridge | None = None
        self._root_level = logging.root.level
        if capture_stdlib:
            self._bridge = _StdlibBridge(self, level)
            logging.root.addHandler(self._bridge)
            logging.root.setLevel(level)
        self._closed = False

    @property
    def level(self) -> int:
        """The lowest level written (fixed: structlog's filtering logger is built from it)."""
        return self._level

    @property
    def extra_processors(self) -> tuple[Processor, ...]:
        """The processors added to the chain (fixed at configuration)."""
        return self._extra_processors

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def dropped(self) -> int:
        """Lines dropped so far because the buffer was full, the sink failed, or logs were closed."""
        return self.writer.dropped

    def write(self, event_dict: EventDict) -> None:
        """Render an event (context merged, timestamped) and queue it; what the stdlib bridge calls."""
        for processor in self._chain:
            event_dict = cast("EventDict", processor(None, "", event_dict))
        self.writer.put(render_json(None, "", event_dict))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written (at most `timeout`, default `flush_timeout`)."""
        return self.writer.flush(self.flush_timeout if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush for at most `timeout` s, stop the writer and restore the previous configuration.

        Returns:
            Whether every queued line reached the sink in time. Calling it again does nothing.

        """
        if self._closed:
            return True
        self._closed = True
        if self._bridge is not None:
            logging.root.removeHandler(self._bridge)
            logging.root.setLevel(self._root_level)
        if active_logs() is self:
            structlog.configure(**self._previous)
        done = self.writer.close(self.flush_timeout if timeout is None else timeout)
        if self._owned is not None and done:
            self._owned.close()  # left open when the writer is still stuck in it
        return done

    def lifespan(self, app: ASGIApp) -> FlushLogsOnShutdown:
        """`app` wrapped so that ASGI lifespan shutdown closes (and so flushes) these logs."""
        return FlushLogsOnShutdown(app, logs=self)

    def __enter__(self) -> StructuredLogs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _drops_line(self, count: int) -> bytes:
        event = {"level": "warning", "logger": "overdrive.logs", "event": DROPS_EVENT, "dropped": count}
        return render_json(None, "", _add_timestamp(None, "", event))


class FlushLogsOnShutdown:
    """Pure ASGI middleware: on lifespan shutdown, close the logs (in a thread, bounded) before reporting done.

    Args:
        app: the ASGI application.
        logs: the logs to close.

    """

    def __init__(self, app: ASGIApp, *, logs: StructuredLogs) -> None:
        self.app = app
        self.logs = logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything through; close the logs just before shutdown completes."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        logs = self.logs

        async def send_after_close(message: Message) -> None:
            if message["type"] in {"lifespan.shutdown.complete", "lifespan.shutdown.failed"}:
                await asyncio.to_thread(logs.close)
            await send(message)

        await self.app(scope, receive, send_after_close)


class _QueueLogger:
    """What structlog wraps: takes the rendered line and queues it."""

    __slots__ = ("put",)

    def __init__(self, writer: BackgroundWriter) -> None:
        self.put = writer.put

    def msg(self, line: bytes) -> None:
        self.put(line)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class _QueueLoggerFactory:
    """structlog's logger factory; it keeps its owner so a later `configure_logging` can close it."""

    def __init__(self, owner: StructuredLogs) -> None:
        self.owner = owner
        self.logger = _QueueLogger(owner.writer)

    def __call__(self, *_names: Any) -> WrappedLogger:
        return self.logger


class _StdlibBridge(logging.Handler):
    """A root handler turning stdlib records into the same JSON lines, with the same context."""

    def __init__(self, logs: StructuredLogs, level: int) -> None:
        super().__init__(level)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a bad %-format in a third-party call must not raise here
            message = f"{record.msg!r} % {record.args!r}"
        event: EventDict = {"level": record.levelname.lower(), "logger": record.name, "event": message}
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES:
                event[name] = value
        if record.exc_info:
            event["exc_info"] = record.exc_info
        self.logs.write(event)


def _add_timestamp(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = datetime.now(UTC)  # orjson writes it as RFC 3339
    return event_dict
