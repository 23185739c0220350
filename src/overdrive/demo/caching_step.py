"""The caching step: the database step's queries behind `overdrive.cache`, and which responses HTTP may cache.

Product pages and category top lists are cached as their finished JSON bodies (`@cache.cached`), so a hit costs
no query and no serialisation. A product page carries the tag `product:{id}`; an order invalidates the tags of the
products it took stock from once its transaction has committed, so a product read after an order never shows the
old stock. Nothing the shop writes changes a top list (it shows ratings, not stock), so top lists expire by TTL.

HTTP caching (`HTTPCacheMiddleware`: Cache-Control, ETag and 304s) covers the public GETs whose bodies no order
changes: listings, search and top lists. Product pages show stock and the export is personal, so neither is marked
cacheable. The embedded default is an in-process memory tier; with a Redis URL, Redis is the shared L2 tier, and
other instances' memory tiers follow invalidations through its pub/sub (with pub/sub's delay). Without Redis,
run one worker: another worker's memory tier would not hear of an order.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from overdrive.cache import Cache, MemoryTier, RedisTier
from overdrive.demo.generator import SEED_VERSION
from overdrive.demo.schemas import ProductDetail, ProductSummary

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from overdrive.demo.database_step import DatabaseQueries
    from overdrive.demo.queries import Sort
    from overdrive.demo.schemas import KeysetPage, OrderIn, OrderOut
    from overdrive.demo.settings import ShopSettings

__all__ = ["PUBLIC_CACHE_CONTROL", "CachedQueries", "create_cache"]

CACHE_TTL_S = 60.0
PUBLIC_CACHE_CONTROL = "public, max-age=60"
MEMORY_ENTRIES = 50_000
# The bytes FastAPI would send for these return types (it serialises response models with the same adapters).
_DETAIL_JSON = TypeAdapter(ProductDetail)
_TOP_JSON = TypeAdapter(list[ProductSummary])


def create_cache(settings: ShopSettings) -> Cache:
    """The shop's cache: a memory tier, and Redis as L2 when `settings.redis_url` is set.

    Redis keys are scoped to the database and data set, so shops on different databases never share entries.
    """
    l2 = None
    if settings.redis_url:
        identity = f"{settings.resolved_database_url}|{SEED_VERSION}|{settings.plan.seed}|{settings.plan.scale!r}"
        scope = hashlib.sha256(identity.encode()).hexdigest()[:12]
        l2 = RedisTier.from_url(settings.redis_url, prefix=f"overdrive-demo:{scope}:")
    return Cache(MemoryTier(max_entries=MEMORY_ENTRIES), l2, namespace="shop")


class CachedQueries:
    """`DatabaseQueries` with product pages and top lists served from `cache` (see the module docstring).

    Args:
        inner: the database step's queries, which answer misses.
        sessions: opens the session a cache load reads from: a load is shared by every request waiting for the
            same key, so it must not borrow one request's session.
        cache: where the finished bodies go.

    """

    def __init__(self, inner: DatabaseQueries, sessions: async_sessionmaker[AsyncSession], cache: Cache) -> None:
        self._inner = inner
        self._sessions = sessions
        self._cache = cache
        self._detail = cache.cached(
            ttl=CACHE_TTL_S, key="detail:{product_id}", tags=["product:{product_id}"], none_ttl=0
        )(self._load_detail)
        self._top = cache.cached(ttl=CACHE_TTL_S, key="top:{category_id}:{limit}", none_ttl=0)(self._load_top)

    async def _load_detail(self, product_id: int) -> bytes | None:
        async with self._sessions() as session:
            detail = await self._inner.product_detail(session, product_id)
        return None if detail is None else _DETAIL_JSON.dump_json(detail)

    async def _load_top(self, category_id: int, limit: int) -> bytes | None:
        async with self._sessions() as session:
            top = await self._inner.category_top(session, category_id, limit)
        return None if top is None else _TOP_JSON.dump_json(top)

    async def product_detail(self, session: AsyncSession, product_id: int) -> bytes | None:  # noqa: ARG002 - see _sessions
        """The product page's JSON body, from the cache or loaded once, or None if there is no such product."""
        return await self._detail(product_id)

    async def category_top(self, session: AsyncSession, category_id: int, limit: int) -> bytes | None:  # noqa: ARG002
        """The top list's JSON body, from the cache or loaded once, or None if there is no such category."""
        return await self._top(category_id, limit)

    async def order_committed(self, order: OrderOut) -> None:
        """Invalidate the pages of the products whose stock the committed `order` took."""
        await self._cache.invalidate_tags(*(f"product:{line.product_id}" for line in order.items))

    async def list_products(
        self,
        session: AsyncSession,
        *,
        category_id: int | None,
        min_price_cents: int | None,
        max_price_cents: int | None,
        sort: Sort,
        page: int,
        page_size: int,
        cursor: str | None,
    ) -> KeysetPage:
        """`DatabaseQueries.list_products` (HTTP caching is the layer that caches listings)."""
        return await self._inner.list_products(
            session,
            category_id=category_id,
            min_price_cents=min_price_cents,
            max_price_cents=max_price_cents,
            sort=sort,
            page=page,
            page_size=page_size,
            cursor=cursor,
        )

    async def search_products(
        self, session: AsyncSession, *, q: str, page: int, page_size: int, cursor: str | None
    ) -> KeysetPage:
        """`DatabaseQueries.search_products` (HTTP caching is the layer that caches search results)."""
        return await self._inner.search_products(session, q=q, page=page, page_size=page_size, cursor=cursor)

    async def place_order(self, session: AsyncSession, order_in: OrderIn, now: datetime) -> OrderOut:
        """`DatabaseQueries.place_order`; the cache is invalidated by `order_committed`, after the commit."""
        return await self._inner.place_order(session, order_in, now)

    async def export_orders(self, session: AsyncSession, user_id: int) -> AsyncIterator[str] | None:
        """`DatabaseQueries.export_orders`: personal and changed by every order, so never cached."""
        return await self._inner.export_orders(session, user_id)
