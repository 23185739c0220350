"""Congestion is not an outage: calls queued in a busy process do not time out, and one slow call does not stop L2.

Found by benchmarks/cache_zipf.py: 500 concurrent requests through an L1+L2 cache on one core timed out thousands of
Redis calls that Redis answered in microseconds (they were queueing for a pooled connection inside the process),
tripped the outage breaker over and over, and loaded 1.4-2x the unique keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from overdrive.cache import Cache, MemoryTier, RedisTier
from overdrive.cache._entry import Entry
from overdrive.cache._outage import Outage
from overdrive.cache.metrics import CacheMetrics
from overdrive.exceptions import CacheTimeout
from overdrive.testing import FakeClock
from tests.cache.redis_helpers import purge, unique_prefix

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0
SLOW = "Redis did not answer within 100 ms."
# A call that holds the tier's only connection for most of the bound without loading Redis (BLPOP on no key).
HOLD = 0.6


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix()
    yield value
    purge(redis_url, value)


@pytest.fixture
async def narrow_tier(redis_url: str, prefix: str) -> AsyncIterator[RedisTier]:
    tier = RedisTier.from_url(redis_url, prefix=prefix, timeout=TIMEOUT, max_connections=1)
    yield tier
    await tier.aclose()


@pytest.mark.integration
class TestQueueing:
    async def test_calls_queued_longer_than_the_timeout_all_succeed(self, narrow_tier: RedisTier, prefix: str) -> None:
        """The bound covers the call on the wire, not the wait for one of the tier's connections."""
        client = narrow_tier.client
        loop = asyncio.get_running_loop()
        started = loop.time()
        holds = [narrow_tier.run(client.blpop([prefix + "nothing"], timeout=HOLD)) for _ in range(2)]
        reads = [narrow_tier.get(f"k{i}") for i in range(100)]
        found = await asyncio.gather(*holds, *reads)
        assert found == [None] * 102
        assert loop.time() - started > TIMEOUT  # the second hold queued, then ran: longer than the bound in all

    async def test_a_cancelled_queued_call_frees_nothing_it_did_not_take(self, narrow_tier: RedisTier) -> None:
        """Cancelling calls while they queue leaves the tier usable (no slot leaked, no coroutine left unawaited)."""
        calls = [asyncio.ensure_future(narrow_tier.get(f"k{i}")) for i in range(50)]
        await asyncio.sleep(0)
        for call in calls[1:]:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        assert await narrow_tier.get("after") is None

    async def test_a_thousand_concurrent_misses_on_one_key_read_redis_once(
        self, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """L2 reads are single-flight too: concurrent L1 misses on a key share one GET, then one load."""
        tier = RedisTier.from_url(redis_url, prefix=prefix, timeout=TIMEOUT)
        cache = Cache(MemoryTier(100), tier)
        reads = 0
        real_get = tier.get

        async def counted_get(key: str) -> object:
            nonlocal reads
            reads += 1
            return await real_get(key)

        monkeypatch.setattr(tier, "get", counted_get)
        loads = 0

        async def loader() -> str:
            nonlocal loads
            loads += 1
            await asyncio.sleep(0.05)
            return "loaded"

        try:
            values = await asyncio.gather(*(cache.get_or_load("hot", loader) for _ in range(1000)))
            assert set(values) == {"loaded"}
            # The callers' shared read, and no re-check: the lease was taken with nothing stored under the key.
            assert (reads, loads) == (1, 1)
            # With an entry stored (expired here), taking the lease reports it and the holder re-reads it first.
            await tier.set(cache.prefix + "stored", _expired_entry(tier))
            assert await cache.get_or_load("stored", loader) == "loaded"
            assert (reads, loads) == (3, 2)  # the miss's read, then the re-check the stored entry called for
        finally:
            await cache.aclose()
            await tier.aclose()


def _expired_entry(tier: RedisTier) -> Entry:
    """An entry that Redis still holds (within the tier's grace) but that is past its deadline: a miss to read."""
    now = tier.clock()
    return Entry(value=b"old", fresh_until=now - 0.5, expires_at=now - 0.1)


class TestOutageNeedsSilence:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(10.0)

    @pytest.fixture
    def outage(self, clock: FakeClock) -> Outage:
        return Outage(CacheMetrics(), backoff=1.0, clock=clock)

    async def test_a_failure_while_another_call_was_answered_does_not_start_an_outage(
        self, outage: Outage, clock: FakeClock
    ) -> None:
        release = asyncio.Event()

        async def slow() -> None:
            await release.wait()
            raise CacheTimeout(SLOW)

        async def quick() -> str:
            return "ok"

        failing = asyncio.ensure_future(outage.call(slow, default="fallback"))
        await asyncio.sleep(0)
        clock.advance(0.05)
        assert await outage.call(quick) == "ok"
        release.set()
        assert await failing == "fallback"
        assert (outage.down, outage.metrics.l2_errors, outage.metrics.l2_outages) == (False, 1, 0)
        assert await outage.call(quick) == "ok"  # L2 is not skipped

    async def test_a_failure_with_no_answer_meanwhile_starts_an_outage(self, outage: Outage, clock: FakeClock) -> None:
        async def frozen() -> None:
            raise CacheTimeout(SLOW)

        async def quick() -> str:
            return "ok"

        assert await outage.call(quick) == "ok"  # answered before the failing call began: proves nothing
        clock.advance(0.05)
        assert await outage.call(frozen, default="fallback") == "fallback"
        assert (outage.down, outage.metrics.l2_outages) == (True, 1)
        assert await outage.call(quick, default="skipped") == "skipped"
