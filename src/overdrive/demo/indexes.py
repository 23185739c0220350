"""The secondary indexes of the database step, created and dropped at app start-up.

The seed creates primary keys only, so `naive` runs on exactly the schema most first versions have. An app in a
profile with the database step runs `CREATE INDEX IF NOT EXISTS` for each index below as it starts; a `naive` app
drops them (`DROP INDEX IF EXISTS`). Whatever order profiles run in on one database, each runs on the schema it
claims: `overdrive demo` goes naive → database → caching → tuned, so the indexes are built once and dropped again
by the next naive run. Each index answers the query plan of one slow endpoint (notes/demo-indexes.md shows the
EXPLAIN output before and after, on SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["INDEXES", "Index", "create_indexes", "drop_indexes", "sync_indexes"]

# Serialises index DDL between workers starting together on one PostgreSQL database (any constant will do).
_PG_LOCK_KEY = 0x0D3E_1DE5


@dataclass(frozen=True, kw_only=True)
class Index:
    """One secondary index and the endpoint whose plan needs it."""

    name: str
    table: str
    columns: tuple[str, ...]
    serves: str

    def create_sql(self) -> str:
        """The idempotent CREATE statement."""
        return f"CREATE INDEX IF NOT EXISTS {self.name} ON {self.table} ({', '.join(self.columns)})"

    def drop_sql(self) -> str:
        """The idempotent DROP statement."""
        return f"DROP INDEX IF EXISTS {self.name}"


INDEXES = (
    Index(
        name="ix_demo_products_category_created",
        table="products",
        columns=("category_id", "created_at", "id"),
        serves="GET /products?category_id=&sort=newest (filter, order and keyset seek in one range scan)",
    ),
    Index(
        name="ix_demo_products_category_price",
        table="products",
        columns=("category_id", "price_cents", "id"),
        serves="GET /products?category_id=&sort=price_asc|price_desc, and category price ranges",
    ),
    Index(
        name="ix_demo_products_created",
        table="products",
        columns=("created_at", "id"),
        serves="GET /products?sort=newest without a category",
    ),
    Index(
        name="ix_demo_products_price",
        table="products",
        columns=("price_cents", "id"),
        serves="GET /products?sort=price_asc|price_desc without a category, and price ranges",
    ),
    Index(
        name="ix_demo_products_category_rating",
        table="products",
        columns=("category_id", "rating_avg"),
        serves="GET /categories/{id}/top (best rated of one category, read in index order)",
    ),
    Index(
        name="ix_demo_products_reviews",
        table="products",
        columns=("review_count DESC", "id"),
        serves="GET /search (read most-reviewed first, so a common word fills the page after a few rows)",
    ),
    Index(
        name="ix_demo_reviews_product_created",
        table="reviews",
        columns=("product_id", "created_at", "id"),
        serves="GET /products/{id} (the five latest reviews without scanning every review)",
    ),
    Index(
        name="ix_demo_orders_user_created",
        table="orders",
        columns=("user_id", "created_at", "id"),
        serves="GET /orders/export (a user's orders, oldest first)",
    ),
    Index(
        name="ix_demo_order_items_order",
        table="order_items",
        columns=("order_id",),
        serves="GET /orders/export (the lines of each order), and the runner's reset of demo orders",
    ),
)


async def sync_indexes(engine: AsyncEngine, *, wanted: bool) -> None:
    """Create every index (`wanted`) or drop every index, in one transaction."""
    async with engine.begin() as conn:
        await _lock(conn)
        existing = await conn.run_sync(_existing)
        missing = [index for index in INDEXES if index.name not in existing]
        for index in INDEXES:
            await conn.execute(text(index.create_sql() if wanted else index.drop_sql()))
        if wanted and missing:
            # SQLite's planner weighs indexes by the statistics ANALYZE gathers; give new ones theirs.
            await conn.execute(text("ANALYZE"))


async def create_indexes(engine: AsyncEngine) -> None:
    """Create the database step's indexes unless they exist."""
    await sync_indexes(engine, wanted=True)


async def drop_indexes(engine: AsyncEngine) -> None:
    """Drop the database step's indexes if they exist, leaving primary keys only."""
    await sync_indexes(engine, wanted=False)


def _existing(conn: Connection) -> set[str]:
    inspector = inspect(conn)
    tables = {index.table for index in INDEXES}
    return {found["name"] or "" for table in tables for found in inspector.get_indexes(table)}


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
