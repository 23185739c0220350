"""The database step: the shop's queries with the fixes `overdrive.db` and SQLAlchemy offer, same responses.

Against `queries.py` (naive): listings are keyset-paginated with `overdrive.db`'s `Paginator` (signed cursors; a page
number without a cursor still works, by OFFSET over an index), every list selects only the columns it shows with
the seller joined in (one query instead of one lazy load per row), a product page is two queries instead of up to
nine, an order reads its products in one IN query, and the CSV export streams from a server-side cursor instead of
being built in memory. The indexes these plans rely on are in `indexes.py`.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, insert, select, update

from overdrive.db import Paginator
from overdrive.demo.models import Category, Order, OrderItem, Product, Review, Seller, User
from overdrive.demo.queries import EXPORT_COLUMNS, LATEST_REVIEWS, TOP_MIN_REVIEWS, OrderRejected, Sort
from overdrive.demo.schemas import (
    CategoryOut,
    KeysetPage,
    OrderIn,
    OrderItemOut,
    OrderOut,
    ProductDetail,
    ProductSummary,
    ReviewOut,
    SellerOut,
    UserRef,
    format_price,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["DatabaseQueries"]

EXPORT_CHUNK_ROWS = 500
_SUMMARY_COLUMNS = (
    Product.id, Product.name, Product.price_cents, Product.category_id, Product.rating_avg, Product.review_count,
    Product.created_at, Seller.id, Seller.name, Seller.country, Seller.rating,
)  # fmt: skip
_ORDERS: dict[Sort, tuple[ColumnElement[Any], ...]] = {
    "newest": (Product.created_at.desc(), Product.id.desc()),
    "price_asc": (Product.price_cents.asc(), Product.id.asc()),
    "price_desc": (Product.price_cents.desc(), Product.id.asc()),
}


def _summaries() -> Select[*tuple[Any, ...]]:
    return select(*_SUMMARY_COLUMNS).join(Seller, Seller.id == Product.seller_id)


def _summary(row: Sequence[Any]) -> ProductSummary:
    product_id, name, price, category_id, rating_avg, review_count, created_at, *seller = row[: len(_SUMMARY_COLUMNS)]
    return ProductSummary(
        id=product_id,
        name=name,
        price=format_price(price),
        category_id=category_id,
        seller=SellerOut(id=seller[0], name=seller[1], country=seller[2], rating=seller[3]),
        rating_avg=rating_avg,
        review_count=review_count,
        created_at=created_at,
    )


class DatabaseQueries:
    """The shop's data access with the database step applied (see the module docstring).

    Args:
        sessions: opens the sessions a streamed export reads from (it outlives the request's own session).
        cursor_secret: signs the listings' pagination cursors.
        max_page_size: the largest page a listing serves.

    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, cursor_secret: str, max_page_size: int) -> None:
        self._sessions = sessions
        self._paginator = Paginator(secret=cursor_secret, max_size=max_page_size)

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
        """One page of products; `cursor` (the previous page's `next_cursor`) seeks instead of skipping rows."""
        filters: list[ColumnElement[bool]] = []
        if category_id is not None:
            filters.append(Product.category_id == category_id)
        if min_price_cents is not None:
            filters.append(Product.price_cents >= min_price_cents)
        if max_price_cents is not None:
            filters.append(Product.price_cents <= max_price_cents)
        stmt = _summaries().where(*filters).order_by(*_ORDERS[sort])
        return await self._page(session, stmt, filters, page=page, page_size=page_size, cursor=cursor)

    async def search_products(
        self, session: AsyncSession, *, q: str, page: int, page_size: int, cursor: str | None
    ) -> KeysetPage:
        """Products whose name or description contains `q` (case-insensitive), most reviewed first."""
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        match = Product.name.ilike(pattern, escape="\\") | Product.description.ilike(pattern, escape="\\")
        stmt = _summaries().where(match).order_by(Product.review_count.desc(), Product.id.asc())
        return await self._page(session, stmt, [match], page=page, page_size=page_size, cursor=cursor)

    async def _page(
        self,
        session: AsyncSession,
        stmt: Select[*tuple[Any, ...]],
        filters: list[ColumnElement[bool]],
        *,
        page: int,
        page_size: int,
        cursor: str | None,
    ) -> KeysetPage:
        total = await session.scalar(select(func.count()).select_from(Product).where(*filters))
        rows: Sequence[Sequence[Any]]
        if cursor is None and page > 1:
            # A page number alone gives no position to seek from: skip rows, but over an index, without a cursor.
            rows = (await session.execute(stmt.offset((page - 1) * page_size).limit(page_size))).all()
            next_cursor = None
        else:
            found = await self._paginator.paginate(session, stmt, first=page_size, after=cursor)
            rows, next_cursor = found.items, found.next_cursor
        items = [_summary(row) for row in rows]
        return KeysetPage(items=items, page=page, page_size=page_size, total=total or 0, next_cursor=next_cursor)

    async def product_detail(self, session: AsyncSession, product_id: int) -> ProductDetail | None:
        """A product with its seller, category and latest reviews (two queries), or None."""
        row = (
            await session.execute(
                _summaries()
                .add_columns(Product.description, Product.stock, Category.id, Category.name)
                .join(Category, Category.id == Product.category_id)
                .where(Product.id == product_id)
            )
        ).one_or_none()
        if row is None:
            return None
        description, stock, category_id, category_name = row[len(_SUMMARY_COLUMNS) :]
        reviews = await session.execute(
            select(Review.id, Review.rating, Review.title, Review.body, Review.created_at, User.id, User.name)
            .join(User, User.id == Review.user_id)
            .where(Review.product_id == product_id)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(LATEST_REVIEWS)
        )
        latest = [
            ReviewOut(id=r[0], rating=r[1], title=r[2], body=r[3], created_at=r[4], user=UserRef(id=r[5], name=r[6]))
            for r in reviews
        ]
        return ProductDetail(
            **_summary(row).model_dump(),
            description=description,
            stock=stock,
            category=CategoryOut(id=category_id, name=category_name),
            latest_reviews=latest,
        )

    async def category_top(self, session: AsyncSession, category_id: int, limit: int) -> list[ProductSummary] | None:
        """The best-rated products of a category (at least three reviews), or None if there is no such category."""
        if await session.scalar(select(Category.id).where(Category.id == category_id)) is None:
            return None
        rows = await session.execute(
            _summaries()
            .where(Product.category_id == category_id, Product.review_count >= TOP_MIN_REVIEWS)
            .order_by(Product.rating_avg.desc(), Product.review_count.desc(), Product.id.asc())
            .limit(limit)
        )
        return [_summary(row) for row in rows]

    async def place_order(self, session: AsyncSession, order_in: OrderIn, now: datetime) -> OrderOut:
        """`queries.place_order` with the products read in one query; same checks, same outcomes."""
        if await session.scalar(select(User.id).where(User.id == order_in.user_id)) is None:
            raise OrderRejected(422, f"User {order_in.user_id} does not exist.")
        wanted = [item.product_id for item in order_in.items]
        found = await session.execute(
            select(Product.id, Product.name, Product.price_cents).where(Product.id.in_(wanted))
        )
        products: dict[int, Row[int, str, int]] = {row.id: row for row in found}
        lines: list[tuple[Row[int, str, int], int]] = []
        for item in order_in.items:
            product = products.get(item.product_id)
            if product is None:
                raise OrderRejected(422, f"Product {item.product_id} does not exist.")
            taken = await session.execute(
                update(Product)
                .where(Product.id == item.product_id, Product.stock >= item.quantity)
                .values(stock=Product.stock - item.quantity)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 0:  # type: ignore[attr-defined]
                msg = f"Product {item.product_id} does not have {item.quantity} in stock."
                raise OrderRejected(409, msg)
            lines.append((product, item.quantity))
        total = sum(p.price_cents * q for p, q in lines)
        created = await session.execute(
            insert(Order)
            .values(user_id=order_in.user_id, status="confirmed", total_cents=total, created_at=now)
            .returning(Order.id)
        )
        order_id: int = created.scalar_one()
        await session.execute(
            insert(OrderItem),
            [
                {"order_id": order_id, "product_id": p.id, "quantity": q, "unit_price_cents": p.price_cents}
                for p, q in lines
            ],
        )
        return OrderOut(
            id=order_id,
            user_id=order_in.user_id,
            status="confirmed",
            total=format_price(total),
            created_at=now,
            items=[
                OrderItemOut(
                    product_id=p.id,
                    name=p.name,
                    quantity=q,
                    unit_price=format_price(p.price_cents),
                    line_total=format_price(p.price_cents * q),
                )
                for p, q in lines
            ],
        )

    async def order_committed(self, order: OrderOut) -> None:
        """Nothing to do: without a cache, the next read sees the new stock."""

    async def export_orders(self, session: AsyncSession, user_id: int) -> AsyncIterator[str] | None:
        """Every order line of a user as CSV chunks, streamed oldest first, or None if there is no such user."""
        if await session.scalar(select(User.id).where(User.id == user_id)) is None:
            return None
        return self._export_rows(user_id)

    async def _export_rows(self, user_id: int) -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        yield _drain(buffer)
        columns = (
            Order.id, Order.created_at, Order.status, OrderItem.product_id, Product.name, OrderItem.quantity,
            OrderItem.unit_price_cents,
        )  # fmt: skip
        stmt = (
            select(*columns)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(Product, Product.id == OrderItem.product_id)
            .where(Order.user_id == user_id)
            .order_by(Order.created_at, Order.id, OrderItem.id)
            .execution_options(yield_per=EXPORT_CHUNK_ROWS)
        )
        async with self._sessions() as session:
            result = await session.stream(stmt)
            async for rows in result.partitions():
                writer.writerows(
                    (order_id, created.isoformat(), status, product_id, name, quantity, format_price(unit),
                     format_price(unit * quantity))
                    for order_id, created, status, product_id, name, quantity, unit in rows
                )  # fmt: skip
                yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
