"""What each profile runs: the `ShopQueries` contract and the implementation of each cumulative step.

`naive` runs `queries.py`; `database` runs `DatabaseQueries`; `caching` (and `tuned`, everything landed) runs
`CachedQueries` over `DatabaseQueries`. All of them answer with the same response bodies; the database step's
listings add a `next_cursor` field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from overdrive.demo import queries
from overdrive.demo.caching_step import CachedQueries
from overdrive.demo.database_step import DatabaseQueries

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from overdrive.cache import Cache
    from overdrive.demo.schemas import OrderIn, OrderOut, ProductDetail, ProductPage, ProductSummary
    from overdrive.demo.settings import ShopSettings

__all__ = ["NaiveQueries", "ShopQueries", "build_queries"]


class ShopQueries(Protocol):
    """The shop's data access, one method per endpoint; `bytes` results are finished JSON bodies."""

    async def list_products(
        self,
        session: AsyncSession,
        *,
        category_id: int | None,
        min_price_cents: int | None,
        max_price_cents: int | None,
        sort: queries.Sort,
        page: int,
        page_size: int,
        cursor: str | None,
    ) -> ProductPage:
        """One page of products."""
        ...

    async def search_products(
        self, session: AsyncSession, *, q: str, page: int, page_size: int, cursor: str | None
    ) -> ProductPage:
        """One page of search results."""
        ...

    async def product_detail(self, session: AsyncSession, product_id: int) -> ProductDetail | bytes | None:
        """A product page, or None."""
        ...

    async def category_top(
        self, session: AsyncSession, category_id: int, limit: int
    ) -> list[ProductSummary] | bytes | None:
        """A category's top list, or None."""
        ...

    async def place_order(self, session: AsyncSession, order_in: OrderIn, now: datetime) -> OrderOut:
        """Write an order inside the caller's transaction."""
        ...

    async def order_committed(self, order: OrderOut) -> None:
        """Called once the order's transaction has committed."""
        ...

    async def export_orders(self, session: AsyncSession, user_id: int) -> str | AsyncIterator[str] | None:
        """A user's order lines as CSV (whole, or in chunks), or None."""
        ...


class NaiveQueries:
    """`queries.py` as a `ShopQueries`: the naive profile (listings ignore `cursor`, as naive APIs have none)."""

    async def list_products(
        self,
        session: AsyncSession,
        *,
        category_id: int | None,
        min_price_cents: int | None,
        max_price_cents: int | None,
        sort: queries.Sort,
        page: int,
        page_size: int,
        cursor: str | None,  # noqa: ARG002 - the naive API pages by number only
    ) -> ProductPage:
        """See `queries.list_products`."""
        return await queries.list_products(
            session,
            category_id=category_id,
            min_price_cents=min_price_cents,
            max_price_cents=max_price_cents,
            sort=sort,
            page=page,
            page_size=page_size,
        )

    async def search_products(
        self,
        session: AsyncSession,
        *,
        q: str,
        page: int,
        page_size: int,
        cursor: str | None,  # noqa: ARG002 - the naive API pages by number only
    ) -> ProductPage:
        """See `queries.search_products`."""
        return await queries.search_products(session, q=q, page=page, page_size=page_size)

    async def product_detail(self, session: AsyncSession, product_id: int) -> ProductDetail | None:
        """See `queries.product_detail`."""
        return await queries.product_detail(session, product_id)

    async def category_top(self, session: AsyncSession, category_id: int, limit: int) -> list[ProductSummary] | None:
        """See `queries.category_top`."""
        return await queries.category_top(session, category_id, limit)

    async def place_order(self, session: AsyncSession, order_in: OrderIn, now: datetime) -> OrderOut:
        """See `queries.place_order`."""
        return await queries.place_order(session, order_in, now)

    async def order_committed(self, order: OrderOut) -> None:
        """Nothing to do."""

    async def export_orders(self, session: AsyncSession, user_id: int) -> str | None:
        """See `queries.export_orders`."""
        return await queries.export_orders(session, user_id)


def build_queries(
    settings: ShopSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    cache: Cache | None,
    max_page_size: int,
) -> ShopQueries:
    """The queries of `settings.profile`; the caching step needs `cache`."""
    steps = settings.steps
    if "database" not in steps:
        return NaiveQueries()
    database = DatabaseQueries(sessions, cursor_secret=settings.cursor_secret, max_page_size=max_page_size)
    if "caching" not in steps or cache is None:
        return database
    return CachedQueries(database, sessions, cache)
