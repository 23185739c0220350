"""Write-behind: writes buffered in memory and flushed to the store in batches, off the request path.

Write-through needs no buffer; it is `Cache.write_through`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from overdrive.exceptions import ConfigurationError, WriteBehindError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

__all__ = ["WriteBehind"]

K = TypeVar("K")
V = TypeVar("V")
log = logging.getLogger("overdrive.cache")


class WriteBehind(Generic[K, V]):
    """A bounded buffer of writes, flushed in batches by a background task, never silently dropped.

    Writes to the same key coalesce (the latest value wins). A batch is flushed when `batch_size` writes are
    pending or `interval` seconds have passed. A failed flush is logged, reported to `on_error`, put back (behind
    any newer value for the same key) and retried with exponential backoff. When `max_pending` writes are
    waiting, `put` waits for a flush to make room: the buffer applies backpressure instead of dropping. Closing
    flushes everything; what the store still refuses after `close_attempts` is raised in `WriteBehindError`.

    Use it next to the cache: `await cache.set(key, value)` then `await buffer.put(key, value)`.

    Args:
        flush: Writes one batch of `(key, value)` pairs to the store; raises if the store did not take it.
        max_pending: The most buffered writes.
        batch_size: The most writes per `flush` call.
        interval: Seconds between flushes when the buffer does not fill up.
        retry_delay: First delay after a failed flush, doubled per failure up to `max_retry_delay`.
        max_retry_delay: The longest delay between retries.
        close_attempts: Flush attempts on close before giving up and raising.
        on_error: Called with the error and the batch after each failed flush.

    Attributes:
        flushed: Writes the store accepted.
        failed_flushes: Flush calls that raised.

    """

    def __init__(
        self,
        flush: Callable[[list[tuple[K, V]]], Awaitable[object]],
        *,
        max_pending: int = 10_000,
        batch_size: int = 100,
        interval: float = 0.1,
        retry_delay: float = 0.1,
        max_retry_delay: float = 30.0,
        close_attempts: int = 3,
        on_error: Callable[[BaseException, list[tuple[K, V]]], object] | None = None,
    ) -> None:
        if not 0 < batch_size <= max_pending:
            msg = f"Write-behind needs 0 < batch_size <= max_pending; got {batch_size} and {max_pending}."
            raise ConfigurationError(msg)
        self._flush = flush
        self.max_pending, self.batch_size, self.interval = max_pending, batch_size, interval
        self.retry_delay, self.max_retry_delay, self.close_attempts = retry_delay, max_retry_delay, close_attempts
        self._on_error = on_error
        self._pending: dict[K, V] = {}
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.flushed = 0
        self.failed_flushes = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the background flusher (entering `async with` does it)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def put(self, key: K, value: V) -> None:
        """Buffer a write; waits while the buffer is full."""
        if self._closed:
            msg = "Cannot buffer a write: the write-behind buffer is closed."
            raise WriteBehindError(msg, [(key, value)])
        while key not in self._pending and len(self._pending) >= self.max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()
        self._pending.pop(key, None)
        self._pending[key] = value
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Flush every pending write now, batch by batch; raises the store's error if a batch fails (kept)."""
        while self._pending:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        async with self._lock:
            pending = self._pending
            batch = [(key, pending.pop(key)) for key in list(itertools.islice(pending, self.batch_size))]
            if not batch:
                return
            try:
                await self._flush(batch)
            except Exception as exc:
                self.failed_flushes += 1
                # Put the batch back in front, unless a newer value for the same key arrived meanwhile.
                self._pending = {**{k: v for k, v in batch if k not in self._pending}, **self._pending}
                log.exception("A write-behind flush of %d writes failed; they are kept and retried.", len(batch))
                if self._on_error is not None:
                    self._on_error(exc, batch)
                raise
            self.flushed += len(batch)
            if len(self._pending) < self.max_pending:
                self._room.set()

    async def _run(self) -> None:
        delay = self.retry_delay
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 -- logged and reported in _flush_batch; the writes are kept
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            else:
                delay = self.retry_delay

    async def aclose(self) -> None:
        """Stop the flusher and flush what is left.

        Raises:
            WriteBehindError: The store still refused writes after `close_attempts` tries; they are attached.

        """
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        delay = self.retry_delay
        for attempt in range(self.close_attempts):
            try:
                await self.flush()
            except Exception as exc:
                if attempt + 1 == self.close_attempts:
                    pending = list(self._pending.items())
                    msg = f"Could not flush {len(pending)} buffered writes on close; they are attached to this error."
                    raise WriteBehindError(msg, pending) from exc  # type: ignore[arg-type]
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            else:
                return
