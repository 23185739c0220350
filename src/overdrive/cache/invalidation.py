"""Cross-instance coherence: one pub/sub connection per cache, carrying peers' invalidations and lease releases.

Every `Cache` whose L2 is a `RedisTier` publishes on ``{prefix}invalidate`` when it writes or invalidates
(`set`, `delete`, `invalidate_tags`, `clear`, write-through) a message naming itself, the kind and the keys or
tags, and runs a `Listener` that applies other instances' messages to its own L1: keys are discarded, tags bumped,
a clear clears. Messages from itself are ignored.

Pub/sub delivers at most once: a message sent while the connection is down is lost. So when the connection
drops the L1 is flushed at once, and flushed again when the subscription is re-established (values cached in
between may have missed an invalidation). The listener reconnects with a capped backoff, logging once per outage.

The same connection carries ``{prefix}lease`` (see `lease.py`): a released lease names its key there, and the
listener wakes this process's waiters for that key, so waiting for another process's load needs no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from overdrive.cache.redis import RedisTier

__all__ = ["INVALIDATE", "LEASE", "Listener", "message"]

log = logging.getLogger("overdrive.cache")
INVALIDATE = "invalidate"
LEASE = "lease"
KEYS, TAGS, CLEAR = "k", "t", "c"
_MAX_BACKOFF = 1.0


def message(sender: str, kind: str, items: Iterable[str] = ()) -> bytes:
    """The invalidation message `sender` publishes: `kind` is "k" (keys), "t" (tags) or "c" (clear)."""
    return orjson.dumps([sender, kind, list(items)])


class Listener:
    """The subscriber of one cache: applies peers' invalidations and wakes lease waiters.

    Args:
        tier: The Redis tier (its prefix names the channels; it makes the dedicated connection).
        sender: This cache's id; its own messages are ignored.
        on_keys: Called with the keys a peer wrote or deleted.
        on_tags: Called with the tags a peer invalidated.
        on_flush: Awaited when every L1 entry must go (a peer cleared, or the subscription dropped).

    Attributes:
        seq: Advanced by every applied invalidation and flush: a reader that saw it change while reading L2
            must not keep what it read in L1 (it may predate the invalidation).
        connected: Whether the subscription is established now.

    """

    def __init__(
        self,
        tier: RedisTier,
        *,
        sender: str,
        on_keys: Callable[[list[str]], None],
        on_tags: Callable[[tuple[str, ...]], None],
        on_flush: Callable[[], Awaitable[None]],
    ) -> None:
        self.tier = tier
        self.sender = sender
        self._on_keys, self._on_tags, self._on_flush = on_keys, on_tags, on_flush
        self._channels = {
            (tier.prefix + INVALIDATE).encode(): self._invalidated,
            (tier.prefix + LEASE).encode(): self._released,
        }
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.seq = 0
        self.connected = False
        self._down = False
        self._late = False

    async def start(self) -> None:
        """Start listening, waiting (within the tier's timeout, a few times over) for the first subscription.

        If Redis cannot be reached it returns anyway; the listener keeps retrying in the background.
        """
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="overdrive-cache-listener")
        try:
            async with asyncio.timeout(self.tier.timeout * 2):
                await self._ready.wait()
        except TimeoutError:
            # Values may be cached before the subscription is up; flush them once it is.
            self._late = True

    @property
    def started(self) -> bool:
        """Whether `start` was called (and `aclose` not since)."""
        return self._task is not None

    def waiter(self, key: str) -> asyncio.Future[None]:
        """A future resolved when the lease on `key` is released; pass it to `forget` when done with it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        return future

    def forget(self, key: str, future: asyncio.Future[None]) -> None:
        """Stop tracking a waiter."""
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[key]

    async def aclose(self) -> None:
        """Stop listening and close the dedicated connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    # -- the subscription loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.tier.timeout
        subscribed_before = False
        while True:
            client = self.tier.subscriber_client()
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(*self._channels)
                async for received in pubsub.listen():
                    if received["type"] == "message":
                        await self._dispatch(received)
                    elif received["type"] == "subscribe" and received["data"] == len(self._channels):
                        if subscribed_before or self._late:
                            await self._flush("The cache's invalidation channel is back; L1 was flushed again.")
                        subscribed_before, delay, self._late = True, self.tier.timeout, False
                        self.connected = True
                        self._ready.set()
            except (RedisError, OSError) as exc:
                if not self._down:
                    log.warning("The cache's invalidation channel dropped (%s); L1 flushed, reconnecting.", exc)
                    self._down = True
            finally:
                self.connected = False
                self._ready.clear()
                await _close(pubsub, client)
            await self._flush(None)
            self._wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _flush(self, note: str | None) -> None:
        self.seq += 1
        await self._on_flush()
        if note is not None and self._down:
            self._down = False
            log.warning(note)

    async def _dispatch(self, received: dict[str, Any]) -> None:
        handler = self._channels.get(received["channel"])
        if handler is not None:
            await handler(received["data"])

    async def _invalidated(self, data: bytes) -> None:
        try:
            sender, kind, items = orjson.loads(data)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("Ignored a malformed message on the cache's invalidation channel.")
            return
        if sender == self.sender:
            return
        self.seq += 1
        if kind == KEYS:
            self._on_keys(items)
        elif kind == TAGS:
            self._on_tags(tuple(items))
        elif kind == CLEAR:
            await self._on_flush()

    async def _released(self, data: bytes) -> None:
        for future in self._waiters.pop(data.decode(errors="replace"), ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        # Waiters re-check the lease themselves; waking them early is always safe, leaving them asleep is not.
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)


async def _close(pubsub: Any, client: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()
    with contextlib.suppress(RedisError, OSError):
        await client.aclose(close_connection_pool=True)
