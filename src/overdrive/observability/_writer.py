"""A bounded buffer of rendered log lines, written to a sink by one background thread.

Callers (the event loop, or any thread logging through the stdlib bridge) only append to a deque: no lock, no
syscall, no wait, and no wake-up of the writer either: it drains the buffer every `interval` seconds (sooner once
it is a quarter full, or on `flush`), because waking a thread per line would make the two threads trade the GIL
per line. When the buffer holds `capacity` lines the new line is dropped and counted instead; the writer reports
the count in the output as soon as the sink accepts writes again. Ordering among lines is preserved.
"""

from __future__ import annotations

import threading
from collections import deque
from time import monotonic, sleep
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BackgroundWriter", "Sink"]

_BATCH = 512  # lines joined into one write: fewer syscalls when the loop logs in bursts
_RETRY_AFTER = 0.05  # seconds between attempts while the sink raises


class Sink(Protocol):
    """Where log lines end up: a binary file, a pipe, a socket wrapper."""

    def write(self, data: bytes, /) -> object:
        """Write all of `data` (may block: only the writer thread calls it)."""

    def flush(self) -> object:
        """Push buffered bytes to the operating system."""


class BackgroundWriter:
    """Owns the buffer and the thread that drains it into a sink.

    Args:
        sink: where lines go; written and flushed by the writer thread only.
        capacity: lines the buffer holds before new ones are dropped.
        report_drops: renders the line announcing how many lines were dropped since the last report.
        interval: seconds between drains when nothing asks for one sooner.

    """

    def __init__(
        self, sink: Sink, *, capacity: int, report_drops: Callable[[int], bytes], interval: float = 0.02
    ) -> None:
        if capacity < 1:
            msg = f"The log buffer needs room for at least one line, not {capacity}."
            raise ValueError(msg)
        self.sink = sink
        self.capacity = capacity
        self.interval = interval
        self._nudge_at = max(1, capacity // 4)
        self.dropped = 0
        self.sink_errors = 0
        self._report_drops = report_drops
        self._reported = 0
        self._lines: deque[bytes | threading.Event] = deque()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        # A daemon thread, so a sink stalled forever cannot keep the process from exiting.
        self._thread = threading.Thread(target=self._run, name="overdrive-log-writer", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether `close` was called (later lines are dropped and counted)."""
        return self._closed

    def put(self, line: bytes) -> None:
        """Queue one line; never blocks. Drops and counts it when the buffer is full or closed.

        The compiled access log (`_speedups.c`, ``queue_line``) does the common case itself (room, no nudge due,
        open) with the same attributes, and calls this for the rest: keep the two in step.
        """
        lines = self._lines
        queued = len(lines)
        if queued >= self.capacity or self._closed:
            self._drop(1)
            return
        lines.append(line)
        if queued + 1 == self._nudge_at:
            self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every line queued so far to reach the sink; True if it did."""
        if not self._thread.is_alive():
            return not self._lines
        done = threading.Event()
        self._lines.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> bool:
        """Stop accepting lines, write what is queued (for at most `timeout` s) and stop the thread."""
        if self._closed:
            return not self._lines
        deadline = monotonic() + timeout
        self._closed = True
        flushed = self.flush(timeout)
        self._wake.set()
        self._thread.join(max(0.0, deadline - monotonic()))
        return flushed and not self._thread.is_alive()

    def _drop(self, count: int) -> None:
        with self._drop_lock:  # the slow path only; `+=` alone could lose counts between threads
            self.dropped += count

    def _run(self) -> None:
        lines = self._lines
        while True:
            if lines or (self.dropped != self._reported and not self._closed):
                self._drain_batch()
            elif self._closed:
                self._drain_batch()  # one last chance to report drops
                return
            else:
                self._wake.wait(self.interval)
                self._wake.clear()  # a nudge lost here is harmless: the buffer is checked right after

    def _drain_batch(self) -> None:
        lines = self._lines
        pop = lines.popleft
        items = [pop() for _ in range(min(len(lines), _BATCH))]
        markers: list[threading.Event] = []
        try:
            data = b"".join(items)  # type: ignore[arg-type]  # flush markers are rare: TypeError finds them
        except TypeError:
            markers = [item for item in items if not isinstance(item, bytes)]
            data = b"".join(item for item in items if isinstance(item, bytes))
        dropped = self.dropped
        if dropped > self._reported:
            data += self._report_drops(dropped - self._reported)
        if self._write(data):
            self._reported = dropped
        else:
            self._drop(len(items) - len(markers))
            sleep(_RETRY_AFTER)  # a failing sink is not retried in a busy loop
        for marker in markers:
            marker.set()  # everything queued before the marker was in this batch

    def _write(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            while data:
                written = self.sink.write(data)
                # A raw file or pipe may take part of it (rare: copying the rest is fine); buffered writers take all.
                data = data[written:] if isinstance(written, int) and 0 < written < len(data) else b""
            self.sink.flush()
        except Exception:  # noqa: BLE001 -- a broken sink must not kill the writer; the loss is counted
            self.sink_errors += 1
            return False
        return True
