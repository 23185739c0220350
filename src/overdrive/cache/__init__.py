"""`overdrive.cache`: a multi-level cache with single-flight loads, tags, stale serving and write helpers.

A two-minute tour::

    from overdrive.cache import Cache, MemoryTier, RedisTier

    cache = Cache(
        MemoryTier(max_entries=50_000, policy="w-tinylfu"),  # or "lru", the default
        RedisTier.from_url("redis://127.0.0.1:6379/0", timeout=0.05),  # optional: shared L2, leases, coherence
        namespace="shop",
        version="v3",
    )

    @cache.cached(ttl=60, tags=["product:{product_id}"], stale_ttl=30)
    async def product(product_id: int) -> Product: ...

    await cache.invalidate_tags("product:42")
"""

from overdrive.cache._entry import Entry
from overdrive.cache.codecs import Codec, MsgspecCodec, PickleCodec
from overdrive.cache.core import Cache
from overdrive.cache.decorator import AsyncCachedFunction, Decorator, SyncCachedFunction
from overdrive.cache.freshness import Freshness
from overdrive.cache.http import HTTPCacheMiddleware
from overdrive.cache.metrics import CacheMetrics
from overdrive.cache.redis import RedisTier
from overdrive.cache.tiers import EvictionPolicy, MemoryTier, Tier
from overdrive.cache.timing import CacheTiming, CacheTimingMiddleware
from overdrive.cache.writes import WriteBehind

__all__ = [
    "AsyncCachedFunction",
    "Cache",
    "CacheMetrics",
    "CacheTiming",
    "CacheTimingMiddleware",
    "Codec",
    "Decorator",
    "Entry",
    "EvictionPolicy",
    "Freshness",
    "HTTPCacheMiddleware",
    "MemoryTier",
    "MsgspecCodec",
    "PickleCodec",
    "RedisTier",
    "SyncCachedFunction",
    "Tier",
    "WriteBehind",
]
