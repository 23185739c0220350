"""The `Cache`: an L1 memory tier and an optional L2 tier behind one read-through API."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from overdrive.cache._outage import Outage
from overdrive.cache._sync import SyncReader
from overdrive.cache.codecs import Codec, MsgspecCodec
from overdrive.cache.decorator import Decorator, cached
from overdrive.cache.flight import Flight, SingleFlight
from overdrive.cache.freshness import Freshness
from overdrive.cache.invalidation import CLEAR, INVALIDATE, KEYS, TAGS, Listener, message
from overdrive.cache.lease import Leases
from overdrive.cache.metrics import CacheMetrics
from overdrive.cache.redis import RedisTier
from overdrive.cache.tiers import MemoryTier, Tier
from overdrive.cache.timing import CacheTiming
from overdrive.exceptions import CacheError, ConfigurationError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from overdrive.cache._entry import Entry

__all__ = ["Cache"]

T = TypeVar("T")
log = logging.getLogger("overdrive.cache")
_MISSING: Any = object()


class Cache:
    """A two-level cache: a bounded memory tier (L1) in front of an optional shared tier (L2).

    Reads go L1, then L2, then the loader; a value loaded or read from L2 is kept in L1. The memory tier holds live
    objects (no copy, no codec); values bound for L2 are encoded by `codec`, so an unserializable value fails at
    `set` time with `SerializationError` when an L2 tier is configured.

    L2 faults fail open: a timed-out or unreachable L2 counts as a miss and a skipped write, logged once per outage
    (see `overdrive.cache._outage`). With a `RedisTier` as L2 the cache also takes a Redis lease before loading, so
    one process loads a missing key while others wait (`lease.py`), and keeps its L1 coherent with other instances
    through pub/sub (`invalidation.py`); call `aclose` to stop that listener.

    Args:
        l1: The memory tier; a 10,000-entry `MemoryTier` when neither tier is given.
        l2: A shared tier (Redis), or None.
        codec: Encodes values for L2 (`MsgspecCodec` by default).
        clock: Time source in seconds. Deadlines are absolute, so with an L2 tier shared between processes it
            must be wall-clock time (the default, `time.time`).
        namespace: Prefixes every key, so several caches can share an L2 tier.
        version: Prefixes every key after the namespace; changing it on deploy retires every old entry at once.
        freshness: The default policy (`Freshness()`: 300 s TTL, 10% jitter).
        rng: The random source for jitter and early refresh (seed it for reproducible tests).

    """

    def __init__(
        self,
        l1: MemoryTier | None = None,
        l2: Tier | None = None,
        *,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        namespace: str = "",
        version: str = "",
        freshness: Freshness | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if l1 is None and l2 is None:
            l1 = MemoryTier(clock=clock)
        if l1 is not None and l1.clock is not clock:
            if l1.clock is not time.time:
                msg = "The memory tier and the cache were given different clocks; pass the same clock to both."
                raise ConfigurationError(msg)
            l1.clock = clock
        self.l1 = l1
        self.l2 = l2
        self.codec: Codec = codec if codec is not None else MsgspecCodec()
        self.clock = clock
        self.freshness = freshness if freshness is not None else Freshness()
        self.rng = rng if rng is not None else random.Random()
        self.prefix = "".join(f"{part}:" for part in (namespace, version) if part)
        self.metrics = CacheMetrics()
        self._timing: ContextVar[CacheTiming | None] = ContextVar(f"overdrive_cache_timing_{id(self)}", default=None)
        self._flights = SingleFlight()
        self._reads: dict[str, asyncio.Future[Entry | None]] = {}
        self._sync: SyncReader | None = None
        self.outage = Outage(self.metrics)
        self.sender = uuid.uuid4().hex
        self._redis = l2 if isinstance(l2, RedisTier) else None
        self._listener: Listener | None = None
        self._leases: Leases | None = None
        if self._redis is not None:
            self._listener = Listener(
                self._redis,
                sender=self.sender,
                on_keys=self._peer_keys,
                on_tags=self._peer_tags,
                on_flush=self._peer_flush,
            )
            self._leases = Leases(self._redis, self._listener, self.outage, self.metrics)

    def key(self, key: str) -> str:
        """The full key stored for a user key (namespace and version prefixed)."""
        return self.prefix + key

    def stats(self) -> dict[str, float]:
        """Every counter (see `CacheMetrics`), plus `evictions` from the memory tier."""
        snapshot = self.metrics.as_dict()
        snapshot["evictions"] = self.l1.evictions if self.l1 is not None else 0
        return snapshot

    def cached(self, **options: Any) -> Decorator:
        """Decorate a function so its results are cached; see `overdrive.cache.decorator.cached` for the options."""
        return cached(self, **options)

    def sync_reader(self) -> SyncReader:
        """The read-through path for synchronous functions (memory tier only).

        Raises:
            ConfigurationError: The cache has no memory tier.

        """
        if self._sync is None:
            if self.l1 is None:
                msg = "Synchronous functions are cached in the memory tier only, and this cache has none."
                raise ConfigurationError(msg)
            self._sync = SyncReader(self.l1, clock=self.clock, metrics=self.metrics, rng=self.rng)
        return self._sync

    # -- plain reads and writes ----------------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, *, decode_as: Any = None) -> Any:
        """The fresh value under `key`, or `default` (stale values and cached errors count as absent)."""
        full = self.prefix + key
        entry = await self._find(full, decode_as)
        if entry is None or entry.error is not None or entry.fresh_until <= self.clock():
            self.metrics.misses += 1
            return default
        self.metrics.hits += 1
        return entry.value

    async def set(self, key: str, value: object, *, ttl: float | None = None, tags: tuple[str, ...] = ()) -> None:
        """Store `value` under `key` in every tier, for `ttl` seconds (the default policy's TTL when None).

        Raises:
            SerializationError: An L2 tier is configured and the codec cannot encode `value`.

        """
        full = self.prefix + key
        policy = self.freshness.with_changes(ttl=ttl)
        payload = self.codec.encode(value) if self.l2 is not None else None
        self._flights.supersede(full)
        await self._put(full, value, payload, policy, tags, delta=0.0)
        await self._publish(KEYS, (full,))

    async def delete(self, key: str) -> bool:
        """Remove `key` from every tier; True if a tier held it."""
        return await self.drop(self.prefix + key)

    async def drop(self, key: str) -> bool:
        """`delete` on a full key (namespace and version included), telling other instances to drop it too."""
        self._flights.supersede(key)
        found = await self._forget(key)
        await self._publish(KEYS, (key,))
        return found

    async def clear(self) -> None:
        """Remove every entry from every tier (and from other instances' memory tiers)."""
        if self.l1 is not None:
            await self.l1.clear()
        if self.l2 is not None:
            await self.outage.call(self.l2.clear)
            await self._publish(CLEAR)

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry carrying any of `tags`: O(len(tags)), however many entries carry them."""
        self._flights.supersede_tagged(tags)
        if self.l1 is not None:
            self.l1.bump(tags)
        if self.l2 is not None:
            await self.outage.call(self.l2.bump_generations, tags)
            await self._publish(TAGS, tags)

    async def drain(self) -> None:
        """Wait until no load or background refresh is running (for a graceful shutdown, and for tests)."""
        await self._flights.drain()

    async def aclose(self) -> None:
        """Cancel running loads and background refreshes, and stop listening to other instances.

        The L2 tier is not closed: it may be shared (close a `RedisTier` with its own `aclose`).
        """
        await self._flights.cancel_all()
        if self._listener is not None:
            await self._listener.aclose()

    # -- other instances ---------------------------------------------------------------------------------------------

    async def _publish(self, kind: str, items: tuple[str, ...] = ()) -> None:
        if self._redis is not None:
            await self.outage.call(self._redis.publish, INVALIDATE, message(self.sender, kind, items))

    def _peer_keys(self, keys: list[str]) -> None:
        self.metrics.peer_invalidations += 1
        for key in keys:
            self._flights.supersede(key)
            if self.l1 is not None:
                self.l1.discard(key)

    def _peer_tags(self, tags: tuple[str, ...]) -> None:
        self.metrics.peer_invalidations += 1
        self._flights.supersede_tagged(tags)
        if self.l1 is not None:
            self.l1.bump(tags)

    async def _peer_flush(self) -> None:
        if self.l1 is not None:
            await self.l1.clear()

    async def _listen(self) -> None:
        listener = self._listener
        if listener is not None and not listener.started and not self.outage.skipping():
            await listener.start()

    # -- read-through ----------------------------------------------------------------------------------------------

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        tags: tuple[str, ...] = (),
        freshness: Freshness | None = None,
        decode_as: Any = None,
    ) -> T:
        """The cached value under `key`, loading it with `loader` (once, whatever the number of callers) if absent.

        Args:
            key: The key, without namespace or version.
            loader: Called with no arguments to produce the value on a miss.
            ttl: Overrides the policy's TTL.
            tags: Tags the loaded value carries, for `invalidate_tags`.
            freshness: The policy (the cache's default when None).
            decode_as: The type an L2 entry decodes to.

        """
        policy = (freshness or self.freshness).with_changes(ttl=ttl)
        value: T = await self.read_through(self.prefix + key, loader, policy, tags, decode_as)
        return value

    async def read_through(
        self, key: str, loader: Callable[[], Awaitable[Any]], policy: Freshness, tags: tuple[str, ...], decode_as: Any
    ) -> Any:
        """`get_or_load` on a full key: the slow path behind every cached call that is not a plain L1 hit."""
        entry = await self._find(key, decode_as, tags)
        metrics = self.metrics
        if entry is not None:
            now = self.clock()
            if now < entry.fresh_until:
                metrics.hits += 1
                if entry.error is not None:
                    raise entry.error
                if now >= entry.refresh_at:
                    self._refresh(key, loader, policy, tags, decode_as, early=True)
                return entry.value
            if entry.error is None:
                if now < entry.stale_until:
                    metrics.stale_served += 1
                    self._refresh(key, loader, policy, tags, decode_as, early=False)
                    return entry.value
                metrics.misses += 1
                try:
                    return await self._timed(self._load(key, loader, policy, tags, decode_as), load=True)
                except Exception:  # noqa: BLE001 -- stale-if-error: any failure of the loader
                    metrics.stale_served += 1
                    return entry.value
        metrics.misses += 1
        return await self._timed(self._load(key, loader, policy, tags, decode_as), load=True)

    def _timed(self, call: Awaitable[T], *, load: bool) -> Awaitable[T]:
        """`call` (an L2 read or a load) as is, or, inside a `timing()` scope, wrapped to add its time there.

        Outside a scope nothing wraps the call, so an L2 hit or a load pays one ContextVar read and no extra frame.
        """
        timing = self._timing.get()
        return call if timing is None else _time_into(timing, call, load=load)

    @contextmanager
    def timing(self) -> Iterator[CacheTiming]:
        """Time the block's cache use past L1 (lookups and seconds), e.g. for one request's Server-Timing."""
        timing = CacheTiming()
        token = self._timing.set(timing)
        try:
            yield timing
        finally:
            self._timing.reset(token)

    async def _find(self, key: str, decode_as: Any, tags: tuple[str, ...] = ()) -> Entry | None:
        """The entry under `key` from L1, else from L2 (then kept in L1); expired and invalidated entries are None."""
        l1 = self.l1
        if l1 is not None:
            entry = l1.peek(key)
            if entry is not None:
                if entry.expires_at > self.clock() and l1.is_current(entry):
                    return entry
                l1.discard(key)
        if self.l2 is None:
            return None
        return await self._timed(self._read_l2(self.l2, key, decode_as, tags), load=False)

    async def _read_l2(self, l2: Tier, key: str, decode_as: Any, tags: tuple[str, ...]) -> Entry | None:
        """`_find_l2`, once for every caller missing the same key in L1 at the same time (single-flight reads).

        Without it a thousand concurrent misses on one key sent a thousand GETs before the load's single-flight
        could merge them. The first caller reads; the others await its result. If that caller is cancelled, the
        others get None (an L2 miss): they go on to the load, which has its own single-flight.
        """
        entry: Entry | None = None
        pending = self._reads.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._reads[key] = asyncio.get_running_loop().create_future()
        try:
            entry = await self._find_l2(l2, key, decode_as, tags)
        finally:
            if self._reads.get(key) is pending:
                del self._reads[key]
            pending.set_result(entry)
        return entry

    async def _find_l2(self, l2: Tier, key: str, decode_as: Any, tags: tuple[str, ...] = ()) -> Entry | None:
        """The current entry under `key` in L2, decoded and kept in L1; None on a miss, a fault or a bad entry."""
        await self._listen()
        listener, outage = self._listener, self.outage
        seq = listener.seq if listener is not None else 0
        entry: Entry | None
        if tags and self._redis is not None:
            entry = await outage.call(self._redis.get_current, key, tags)
        else:
            entry = await outage.call(l2.get, key)
            if entry is not None and entry.tags and await outage.call(l2.get_generations, entry.tags) != entry.gens:
                return None
        if entry is None:
            return None
        try:
            value = self.codec.decode(entry.value, decode_as)  # type: ignore[arg-type]
        except (SerializationError, TypeError):
            self.metrics.corrupt += 1
            log.warning("Dropped a cache entry that could not be decoded.", extra={"key": key})
            await outage.call(l2.delete, key)
            return None
        gens = self.l1.generations(entry.tags) if self.l1 is not None else ()
        local = entry.replace_value(value, gens)
        # An invalidation that arrived during the read may postdate what was read: serve it once, do not keep it.
        if self.l1 is not None and (listener is None or listener.seq == seq):
            self.l1.store(key, local)
        return local

    async def _find_fresh_l2(self, key: str, decode_as: Any, tags: tuple[str, ...]) -> Entry | None:
        """A fresh (not stale) entry under `key` in L2: what a process waiting for another's load looks for."""
        if self.l2 is None:
            return None
        entry = await self._find_l2(self.l2, key, decode_as, tags)
        if entry is None or entry.error is not None or entry.fresh_until <= self.clock():
            return None
        return entry

    # -- loads -------------------------------------------------------------------------------------------------------

    async def _load(
        self, key: str, loader: Callable[[], Awaitable[Any]], policy: Freshness, tags: tuple[str, ...], decode_as: Any
    ) -> Any:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights.start(key, tags, lambda f: self._run_leased(key, loader, policy, f, decode_as))
        else:
            self.metrics.coalesced_waits += 1
        return await asyncio.shield(flight.task)

    def _refresh(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        policy: Freshness,
        tags: tuple[str, ...],
        decode_as: Any,
        *,
        early: bool,
    ) -> None:
        """Start one background load for `key`, unless one is running."""
        if self._flights.get(key) is None:
            self.metrics.refreshes += 1
            self.metrics.early_refreshes += early
            self._flights.start(key, tags, lambda f: self._run_leased(key, loader, policy, f, decode_as))

    async def _run_leased(
        self, key: str, loader: Callable[[], Awaitable[Any]], policy: Freshness, flight: Flight, decode_as: Any
    ) -> Any:
        """`_run`, holding the key's Redis lease when L2 is Redis, unless another process stores the value first."""
        leases = self._leases
        if leases is None:
            return await self._run(key, loader, policy, flight)
        token, found = await leases.acquire(key, lambda: self._find_fresh_l2(key, decode_as, flight.tags))
        if found is not None:
            return found.value
        renewal = leases.keep(key, token) if token is not None else None
        try:
            return await self._run(key, loader, policy, flight)
        finally:
            if renewal is not None:
                renewal.cancel()  # not awaited: its script checks the token, so a late renewal is harmless
            if token is not None:
                await leases.release(key, token)

    async def _run(self, key: str, loader: Callable[[], Awaitable[Any]], policy: Freshness, flight: Flight) -> Any:
        tags = flight.tags
        # Generations are read before loading: a tag invalidated during the load makes the result stale at once.
        gens1 = self.l1.generations(tags) if self.l1 is not None else ()
        gens2 = await self._l2_generations(tags)
        clock = self.clock
        self.metrics.loads += 1
        start = clock()
        try:
            value = await loader()
        except Exception as exc:
            self.metrics.record_load(clock() - start, failed=True)
            if policy.caches_error(exc) and not flight.superseded and self.l1 is not None:
                self.l1.store(key, policy.error_entry(exc, now=clock(), tags=tags, gens=gens1))
            raise
        delta = clock() - start
        self.metrics.record_load(delta, failed=False)
        if not flight.superseded:
            payload = self.codec.encode(value) if self.l2 is not None else None
            await self._put(key, value, payload, policy, tags, delta=delta, gens=(gens1, gens2))
        return value

    async def _put(
        self,
        key: str,
        value: object,
        payload: bytes | None,
        policy: Freshness,
        tags: tuple[str, ...],
        *,
        delta: float,
        gens: tuple[tuple[int, ...], tuple[int, ...] | None] | None = None,
        strict: bool = False,
    ) -> None:
        """Store an encoded-if-needed value in every tier, or forget the key if the policy does not cache it.

        L2 faults fail open (the L2 write is skipped), unless `strict`, when they raise.
        """
        l1, l2 = self.l1, self.l2
        await self._listen()
        if gens is None:
            gens = (l1.generations(tags) if l1 is not None else (), await self._l2_generations(tags, strict=strict))
        entry = policy.entry(value, now=self.clock(), delta=delta, rng=self.rng, tags=tags, gens=gens[0])
        if entry is None:
            await self._forget(key)
            return
        if l1 is not None:
            l1.store(key, entry)
        if l2 is not None and gens[1] is not None:
            stored = entry.replace_value(payload, gens[1])
            if strict:
                await l2.set(key, stored)
            else:
                await self.outage.call(l2.set, key, stored)

    async def _l2_generations(self, tags: tuple[str, ...], *, strict: bool = False) -> tuple[int, ...] | None:
        """The L2 generations of `tags`; None when L2 failed (then nothing may be written to it) unless `strict`."""
        if self.l2 is None or not tags:
            return ()
        if strict:
            return await self.l2.get_generations(tags)
        gens: tuple[int, ...] | None = await self.outage.call(self.l2.get_generations, tags)
        return gens

    async def _forget(self, key: str) -> bool:
        found = self.l1.discard(key) if self.l1 is not None else False
        if self.l2 is not None:
            found = await self.outage.call(self.l2.delete, key, default=False) or found
        return found

    # -- write helpers ------------------------------------------------------------------------------------------------

    async def write_through(
        self,
        key: str,
        value: T,
        writer: Callable[[T], Awaitable[object]],
        *,
        ttl: float | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        """Write `value` to the store with `writer`, then to the cache: both take the new value, or neither does.

        The value is encoded first, so an unserializable one fails before the store is touched. If `writer` raises,
        the key is dropped from the cache (the store may have half-applied the write) and the error propagates.
        If the store was written but a cache tier then fails, the key is dropped from every tier and `CacheError`
        is raised: the cache never keeps a value the store no longer holds.
        """
        full = self.prefix + key
        policy = self.freshness.with_changes(ttl=ttl)
        payload = self.codec.encode(value) if self.l2 is not None else None
        self._flights.supersede(full)
        try:
            await writer(value)
        except BaseException:
            await self._forget(full)
            raise
        self._flights.supersede(full)
        try:
            await self._put(full, value, payload, policy, tags, delta=0.0, strict=True)
        except Exception as exc:
            await self._forget(full)
            await self._publish(KEYS, (full,))
            msg = f"The store accepted the write for {key!r}, but the cache could not be updated; the key was dropped."
            raise CacheError(msg) from exc
        await self._publish(KEYS, (full,))


async def _time_into(timing: CacheTiming, call: Awaitable[T], *, load: bool) -> T:
    started = perf_counter()
    try:
        return await call
    finally:
        timing.seconds += perf_counter() - started
        if load:
            timing.loads += 1
        else:
            timing.l2_reads += 1
