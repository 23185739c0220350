"""`RedisTier`: the shared L2 tier, one Redis value per entry, tag generations in one Redis hash.

Keys under the tier's `prefix` (``overdrive:`` by default):

* ``{prefix}e:{key}`` — one entry, in the binary layout of `overdrive.cache._layout` (deadlines, tag generations,
  codec bytes). Its Redis TTL is `expires_at` plus `grace` seconds: Redis only collects garbage; whether an entry
  is live is decided by `expires_at` on the tier's own clock.
* ``{prefix}gens`` — a hash of tag generations; a bump is one HINCRBY per tag, O(1) whatever the entries.
* ``{prefix}lease:{key}``, channels ``{prefix}invalidate`` and ``{prefix}lease`` — see `lease.py`, `invalidation.py`.

Every call is bounded by `timeout` seconds. A call that runs out of time raises `CacheTimeout`; one that cannot
reach Redis raises `CacheUnavailable`. The `Cache` catches both and fails open (see `_outage.py`).

How the bound is kept is the hot path's largest cost after the round trip itself. A tier built by `from_url` uses
a plain connection pool whose sockets carry `timeout` as their connect, write and read timeouts, and a semaphore
of `max_connections` slots in front of it: an uncontended call costs one semaphore step, and a call waiting for a
slot fails once `timeout` seconds pass with no call answered. (redis-py's BlockingConnectionPool and an
`asyncio.timeout` around each call cost about 8 and 10 µs of CPU per call here, a fifth of a GET; see
BENCHMARKS.md.) Each step of a call is bounded, so a call against a server that accepts connections and then stalls
fails within about `timeout`; in the worst case (connect, write and read each stalling just short of the bound)
within three times it. A client passed in without its own socket timeouts gets an `asyncio.timeout` around every
call instead.

Queueing while other calls are answered is congestion, not a slow Redis: under a saturated event loop (hundreds of
concurrent requests on one core, benchmarks/cache_zipf.py) a queued call waits for its own process. Failing it after
`timeout` failed thousands of calls that Redis answered in microseconds, and sent each of those requests to the
loader; so a queued call keeps its place as long as Redis keeps answering.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from overdrive.cache._layout import pack, unpack
from overdrive.exceptions import CacheTimeout, CacheUnavailable, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from overdrive.cache._entry import Entry

__all__ = ["RedisTier"]

# GET an entry and, in the same round trip, the generations of the tags the caller expects it to carry.
_GET_WITH_GENERATIONS = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
if #ARGV == 0 then return {value} end
return {value, redis.call('HMGET', KEYS[2], unpack(ARGV))}
"""
_BUMP = "for i = 1, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end return #ARGV"
_CLEAR_BATCH = 500


def _no_retry() -> Retry:
    # redis-py retries failed commands by default, which would multiply the time bound; the Cache fails open instead.
    return Retry(NoBackoff(), 0)


class RedisTier:
    """A `Tier` on Redis (redis-py asyncio, hiredis parser), shared by every process that uses the same `prefix`.

    Args:
        client: A redis-py asyncio client. Build one with `from_url` to get the time bounds and no retries.
        prefix: Prefixes every Redis key and channel the tier uses.
        timeout: Seconds any one call may take before it fails with `CacheTimeout`.
        clock: Time source for `expires_at`, in seconds; must be wall-clock time shared by every process (the
            default, `time.time`), or a fake clock in tests.
        grace: Seconds an entry outlives its `expires_at` in Redis (Redis's TTL only collects garbage).
        lease_ttl: Seconds a cross-process load lease lasts before another process may take over.
        max_concurrency: Calls in flight at once; more queue for a slot (failing after `timeout` of silence).

    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "overdrive:",
        timeout: float = 0.1,
        clock: Callable[[], float] = time.time,
        grace: float = 1.0,
        lease_ttl: float = 10.0,
        max_concurrency: int = 50,
    ) -> None:
        if max_concurrency < 1:
            msg = f"A Redis tier needs max_concurrency >= 1; got {max_concurrency}."
            raise ConfigurationError(msg)
        if timeout <= 0 or lease_ttl <= 0 or grace < 0:
            msg = f"A Redis tier needs timeout > 0, lease_ttl > 0 and grace >= 0; got {timeout}, {lease_ttl}, {grace}."
            raise ConfigurationError(msg)
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock
        self.grace = grace
        self.lease_ttl = lease_ttl
        self._entry_prefix = prefix + "e:"
        self.gens_key = prefix + "gens"
        self._slots = asyncio.Semaphore(max_concurrency)
        settings = client.connection_pool.connection_kwargs
        bounds = (settings.get("socket_timeout"), settings.get("socket_connect_timeout"))
        # The client bounds every step itself when its sockets time out within our bound: no per-call timer needed.
        self._client_bounded = all(b is not None and 0 < b <= timeout for b in bounds)
        self._answered_at = 0.0  # time.monotonic() when a call last returned: Redis is alive, queues are congestion
        self._get_with_gens = client.register_script(_GET_WITH_GENERATIONS)
        self._bump = client.register_script(_BUMP)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "overdrive:",
        timeout: float = 0.1,
        clock: Callable[[], float] = time.time,
        grace: float = 1.0,
        lease_ttl: float = 10.0,
        max_connections: int = 50,
    ) -> Self:
        """A tier on the Redis server at `url` (``redis://host:port/db``), each call bounded by `timeout` seconds.

        Args:
            url: The server's URL.
            prefix: Prefixes every key and channel.
            timeout: Seconds any one call may take.
            clock: Time source for deadlines (wall-clock `time.time` by default).
            grace: Seconds entries outlive `expires_at` in Redis.
            lease_ttl: Seconds a load lease lasts.
            max_connections: Bound on connections and calls in flight; past it, calls wait (within `timeout`).

        """
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_no_retry(),
        )
        client = aioredis.Redis.from_pool(pool)
        return cls(
            client,
            prefix=prefix,
            timeout=timeout,
            clock=clock,
            grace=grace,
            lease_ttl=lease_ttl,
            max_concurrency=max_connections,
        )

    def subscriber_client(self) -> aioredis.Redis:
        """A new client on the same server for a pub/sub connection: no read timeout (it idles), no retries.

        A dropped subscription must surface as an error, never be silently re-established, so listeners can flush
        what they may have missed.
        """
        pool = self.client.connection_pool
        name = "".join(char if "!" <= char <= "~" else "_" for char in self.listener_name)
        kwargs = {**pool.connection_kwargs, "socket_timeout": None, "retry": _no_retry(), "client_name": name}
        kwargs.setdefault("socket_connect_timeout", self.timeout)
        return aioredis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))

    async def run(self, call: Awaitable[Any]) -> Any:
        """Await a redis-py call within the tier's time bound.

        Raises:
            CacheTimeout: Redis did not answer within `timeout` seconds.
            CacheUnavailable: Redis could not be reached or refused the command.

        """
        slots = self._slots
        if slots.locked():
            await self._queue(slots, call)
        else:
            await slots.acquire()
        try:
            if self._client_bounded:
                result = await call
            else:
                async with asyncio.timeout(self.timeout):
                    result = await call
        except (TimeoutError, RedisTimeoutError) as exc:
            msg = f"Redis did not answer within {self.timeout * 1000:.0f} ms."
            raise CacheTimeout(msg) from exc
        except (RedisError, OSError) as exc:
            msg = f"Redis cannot be reached: {exc}"
            raise CacheUnavailable(msg) from exc
        finally:
            slots.release()
        self._answered_at = time.monotonic()
        return result

    async def _queue(self, slots: asyncio.Semaphore, call: Awaitable[Any]) -> None:
        """Wait for a slot while Redis keeps answering other calls; fail after `timeout` seconds of silence."""
        waited_from = time.monotonic()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        await slots.acquire()
                except TimeoutError as exc:
                    if self._answered_at > waited_from:
                        waited_from = time.monotonic()
                        continue
                    msg = f"No Redis connection came free within {self.timeout * 1000:.0f} ms."
                    raise CacheTimeout(msg) from exc
                return
        except BaseException:
            close = getattr(call, "close", None)
            if close is not None:
                close()  # never awaited: say so to the coroutine, not to the warnings filter
            raise

    @property
    def listener_name(self) -> str:
        """The client name of subscriber connections (``CLIENT LIST`` shows it), e.g. to find them for ops."""
        return "overdrive-listener:" + self.prefix

    def entry_key(self, key: str) -> str:
        """The Redis key holding the entry for cache key `key`."""
        return self._entry_prefix + key

    # -- the Tier protocol ---------------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        """The live entry under `key` (value: codec bytes), or None; foreign or corrupt values are None."""
        data = await self.run(self.client.get(self._entry_prefix + key))
        if data is None:
            return None
        entry = unpack(data)
        if entry is None or entry.expires_at <= self.clock():
            return None
        return entry

    async def get_current(self, key: str, tags: tuple[str, ...]) -> Entry | None:
        """The live entry under `key` if it carries `tags` at their current generations, in one round trip.

        An entry carrying other tags than expected is checked with a second read of its own tags' generations.
        """
        found = await self.run(self._get_with_gens(keys=[self._entry_prefix + key, self.gens_key], args=tags))
        if found is None:
            return None
        entry = unpack(found[0])
        if entry is None or entry.expires_at <= self.clock():
            return None
        if entry.tags == tags:
            current = tuple(int(gen) if gen is not None else 0 for gen in found[1]) if tags else ()
        elif entry.tags:
            current = await self.get_generations(entry.tags)
        else:
            current = ()
        return entry if current == entry.gens else None

    async def set(self, key: str, entry: Entry) -> None:
        """Store `entry` (value: codec bytes) until its `expires_at`, plus `grace` seconds in Redis."""
        ttl_ms = max(1, int((entry.expires_at - self.clock() + self.grace) * 1000))
        await self.run(self.client.set(self._entry_prefix + key, pack(entry), px=ttl_ms))

    async def delete(self, key: str) -> bool:
        """Remove the entry under `key`; True if Redis held one."""
        return bool(await self.run(self.client.delete(self._entry_prefix + key)))

    async def clear(self) -> None:
        """Remove every entry under the prefix (in batches); tag generations are kept."""
        pattern = _escape_glob(self._entry_prefix) + "*"
        cursor = 0
        while True:
            cursor, keys = await self.run(self.client.scan(cursor, match=pattern, count=_CLEAR_BATCH))
            if keys:
                await self.run(self.client.unlink(*keys))
            if cursor == 0:
                return

    async def get_generations(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """The current generation of each tag, in one HMGET."""
        if not tags:
            return ()
        found = await self.run(self.client.hmget(self.gens_key, tags))
        return tuple(int(gen) if gen is not None else 0 for gen in found)

    async def bump_generations(self, tags: tuple[str, ...]) -> None:
        """Advance each tag's generation: one HINCRBY per tag, in one script call."""
        if tags:
            await self.run(self._bump(keys=[self.gens_key], args=tags))

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish `message` on `channel` (under the prefix)."""
        await self.run(self.client.publish(self.prefix + channel, message))

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"RedisTier(prefix={self.prefix!r}, timeout={self.timeout})"


def _escape_glob(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
