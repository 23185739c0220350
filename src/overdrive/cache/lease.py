"""Cross-process single-flight: a Redis lease per key, so one process loads a missing value and the others wait.

Within a process, `SingleFlight` already reduces the callers of one key to one load task. That task, before calling
the loader, takes the key's lease: ``SET {prefix}lease:{key} <token> NX PX <lease_ttl>``.

* The holder re-reads L2 (another process may have stored the value just before), loads, stores the value, then
  releases: a script deletes the lease only if it still holds its token (it may have expired and been taken over)
  and publishes the key on ``{prefix}lease``.
* A process that finds the lease taken registers a waiter with its `Listener`, then reads the lease's remaining
  time. It sleeps until the release is published or the lease would expire, whichever is first, then re-reads L2:
  a fresh value there is its answer. Registering before reading the lease closes the race with a release that
  happens in between: either the read sees the lease gone, or the release's message arrives after registration.
* While the holder's loader runs, the holder renews the lease every third of `lease_ttl` (a script extends it only
  if it still holds the token), so a load slower than `lease_ttl` is not taken over and run twice.
* A holder that dies stops renewing and leaves a lease that expires within `lease_ttl`: a waiter then finds no
  value, takes the lease and loads. Nobody polls.
* If Redis fails, the load runs here (fail open): stampede protection degrades to per-process single-flight.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

from overdrive.cache._outage import L2_FAULTS
from overdrive.cache.invalidation import LEASE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from overdrive.cache._entry import Entry
    from overdrive.cache._outage import Outage
    from overdrive.cache.invalidation import Listener
    from overdrive.cache.metrics import CacheMetrics
    from overdrive.cache.redis import RedisTier

__all__ = ["Leases"]

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
# Take the lease and, in the same step, say whether an entry is stored: 0 lease held elsewhere, 1 taken and nothing
# stored (load at once), 2 taken and an entry exists (re-read it: another process may have stored it just now).
_TAKE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return 1 + redis.call('EXISTS', KEYS[2])
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_TAKEN_NOTHING_STORED = 1
# A waiter sleeps a little past the lease's expiry, so the holder's own release, if any, wins the race.
_EXPIRY_MARGIN = 0.005


class Leases:
    """The load leases of one cache on its Redis tier.

    Args:
        tier: The Redis tier; `tier.lease_ttl` is how long a lease lasts.
        listener: Wakes waiters when a lease is released.
        outage: The cache's fail-open state.
        metrics: Where `lease_waits` is counted.
        max_wait: The longest a process waits for others' loads before loading itself (3 lease TTLs by default).

    """

    def __init__(
        self,
        tier: RedisTier,
        listener: Listener,
        outage: Outage,
        metrics: CacheMetrics,
        *,
        max_wait: float | None = None,
    ) -> None:
        self.tier, self.listener, self.outage, self.metrics = tier, listener, outage, metrics
        self.max_wait = max_wait if max_wait is not None else 3 * tier.lease_ttl
        self._ttl_ms = max(1, int(tier.lease_ttl * 1000))
        self._channel = tier.prefix + LEASE
        self._release = tier.client.register_script(_RELEASE)
        self._renew = tier.client.register_script(_RENEW)
        self._take = tier.client.register_script(_TAKE)

    def _key(self, key: str) -> str:
        return self.tier.prefix + "lease:" + key

    async def acquire(
        self, key: str, recheck: Callable[[], Awaitable[Entry | None]]
    ) -> tuple[str | None, Entry | None]:
        """Take the lease on `key`, or wait for the process holding it to store the value.

        Args:
            key: The full cache key.
            recheck: Reads a fresh entry for `key` from L2, or None.

        Returns:
            `(token, None)`: this process holds the lease and must load, then `release(key, token)`.
            `(None, entry)`: another process stored `entry` meanwhile; do not load.
            `(None, None)`: Redis failed or the wait ran out; load here without a lease.

        """
        if self.outage.skipping():
            return None, None
        await self.listener.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        token = secrets.token_hex(8)
        lease_key, outage = self._key(key), self.outage
        started = outage.clock()
        try:
            while True:
                started = outage.clock()
                keys = [lease_key, self.tier.entry_key(key)]
                taken = await self.tier.run(self._take(keys=keys, args=[token, self._ttl_ms]))
                outage.answered()
                if taken:
                    # Nothing stored: no re-read needed (a GET and a round trip saved per load).
                    found = None if taken == _TAKEN_NOTHING_STORED else await recheck()
                    if found is None:
                        return token, None
                    await self.release(key, token)
                    return None, found
                started = outage.clock()
                await self._wait(key, lease_key, deadline - loop.time())
                found = await recheck()
                if found is not None:
                    self.metrics.lease_waits += 1
                    return None, found
                if loop.time() >= deadline:
                    return None, None
        except L2_FAULTS as exc:
            outage.failed(exc, started=started)
            return None, None

    async def _wait(self, key: str, lease_key: str, budget: float) -> None:
        """Sleep until the lease on `key` is released or expires (at most `budget` seconds)."""
        waiter = self.listener.waiter(key)
        try:
            remaining_ms = await self.tier.run(self.tier.client.pttl(lease_key))
            self.outage.answered()
            if remaining_ms > 0 and budget > 0:
                await asyncio.wait({waiter}, timeout=min(remaining_ms / 1000 + _EXPIRY_MARGIN, budget))
        finally:
            self.listener.forget(key, waiter)

    def keep(self, key: str, token: str) -> asyncio.Task[None]:
        """Renew the lease on `key` every third of its TTL while `token` holds it; cancel the task when done."""
        return asyncio.create_task(self._keep(key, token), name=f"overdrive-lease-renewal:{key}")

    async def _keep(self, key: str, token: str) -> None:
        interval = self.tier.lease_ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await self.tier.run(self._renew(keys=[self._key(key)], args=[token, self._ttl_ms]))
            except L2_FAULTS as exc:
                self.outage.failed(exc)  # the lease may lapse; the load goes on and stores its value anyway
                continue
            if not kept:
                return  # expired and taken over: renewing someone else's lease would be wrong
            self.metrics.lease_renewals += 1

    async def release(self, key: str, token: str) -> None:
        """Give up the lease on `key` if `token` still holds it, and wake every process waiting for it."""
        await self.outage.call(self._release_now, key, token)

    async def _release_now(self, key: str, token: str) -> None:
        await self.tier.run(self._release(keys=[self._key(key)], args=[token, self._channel, key]))
