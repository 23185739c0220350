"""The shop's data access, written the way most first versions are.

This is the `naive` profile on purpose: OFFSET pagination, whole rows where a few columns would do, one lazy load
per related row (N+1), no secondary indexes behind any filter, and the whole CSV export built in memory. The
database step's versions are in `database_step.py`, the caching step's in `caching_step.py` (`steps.py` picks per
profile); every profile keeps the response bodies byte-for-byte the same.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Select, func, select, update

from overdrive.demo.models import Category, Order, OrderItem, Product, Review, User
from overdrive.demo.schemas import (
    CategoryOut,
    OrderIn,
    OrderItemOut,
    OrderOut,
    ProductDetail,
    ProductPage,
    ProductSummary,
    ReviewOut,
    SellerOut,
    UserRef,
    format_price,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "LATEST_REVIEWS",
    "OrderRejected",
    "Sort",
    "category_top",
    "export_orders",
    "list_products",
    "place_order",
    "product_detail",
    "search_products",
]

Sort = Literal["newest", "price_asc", "price_desc"]
LATEST_REVIEWS = 5
TOP_MIN_REVIEWS = 3
EXPORT_COLUMNS = (
    "order_id", "created_at", "status", "product_id", "product_name", "quantity", "unit_price", "line_total",
)  # fmt: skip


class OrderRejected(Exception):  # noqa: N818 - a business outcome, mapped to an HTTP status by the app
    """An order cannot be placed; nothing was written."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def _summary(product: Product) -> ProductSummary:
    seller = await product.awaitable_attrs.seller  # one query per row: the N+1 the database step removes
    return ProductSummary(
        id=product.id,
        name=product.name,
        price=format_price(product.price_cents),
        category_id=product.category_id,
        seller=SellerOut(id=seller.id, name=seller.name, country=seller.country, rating=seller.rating),
        rating_avg=product.rating_avg,
        review_count=product.review_count,
        created_at=product.created_at,
    )


async def _page(session: AsyncSession, stmt: Select[Product], page: int, page_size: int) -> ProductPage:
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    products = (await session.scalars(stmt.offset((page - 1) * page_size).limit(page_size))).all()
    items = [await _summary(product) for product in products]
    return ProductPage(items=items, page=page, page_size=page_size, total=total or 0)


async def list_products(
    session: AsyncSession,
    *,
    category_id: int | None,
    min_price_cents: int | None,
    max_price_cents: int | None,
    sort: Sort,
    page: int,
    page_size: int,
) -> ProductPage:
    """One page of products, filtered by category and price range, in the requested order."""
    stmt = select(Product)
    if category_id is not None:
        stmt = stmt.where(Product.category_id == category_id)
    if min_price_cents is not None:
        stmt = stmt.where(Product.price_cents >= min_price_cents)
    if max_price_cents is not None:
        stmt = stmt.where(Product.price_cents <= max_price_cents)
    orders: dict[Sort, tuple[ColumnElement[Any], ...]] = {
        "newest": (Product.created_at.desc(), Product.id.desc()),
        "price_asc": (Product.price_cents.asc(), Product.id.asc()),
        "price_desc": (Product.price_cents.desc(), Product.id.asc()),
    }
    return await _page(session, stmt.order_by(*orders[sort]), page, page_size)


async def search_products(session: AsyncSession, *, q: str, page: int, page_size: int) -> ProductPage:
    """Products whose name or description contains `q` (case-insensitive), most reviewed first."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    stmt = (
        select(Product)
        .where(Product.name.ilike(pattern, escape="\\") | Product.description.ilike(pattern, escape="\\"))
        .order_by(Product.review_count.desc(), Product.id.asc())
    )
    return await _page(session, stmt, page, page_size)


async def product_detail(session: AsyncSession, product_id: int) -> ProductDetail | None:
    """A product with its seller, category and latest reviews, or None if there is no such product."""
    product = await session.get(Product, product_id)
    if product is None:
        return None
    summary = await _summary(product)
    category = await product.awaitable_attrs.category
    reviews = (
        await session.scalars(
            select(Review)
            .where(Review.product_id == product_id)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(LATEST_REVIEWS)
        )
    ).all()
    latest = []
    for review in reviews:
        user = await review.awaitable_attrs.user
        latest.append(
            ReviewOut(
                id=review.id,
                rating=review.rating,
                title=review.title,
                body=review.body,
                created_at=review.created_at,
                user=UserRef(id=user.id, name=user.name),
            )
        )
    return ProductDetail(
        **summary.model_dump(),
        description=product.description,
        stock=product.stock,
        category=CategoryOut(id=category.id, name=category.name),
        latest_reviews=latest,
    )


async def category_top(session: AsyncSession, category_id: int, limit: int) -> list[ProductSummary] | None:
    """The best-rated products of a category (at least three reviews), or None if there is no such category."""
    if await session.get(Category, category_id) is None:
        return None
    products = (
        await session.scalars(
            select(Product)
            .where(Product.category_id == category_id, Product.review_count >= TOP_MIN_REVIEWS)
            .order_by(Product.rating_avg.desc(), Product.review_count.desc(), Product.id.asc())
            .limit(limit)
        )
    ).all()
    return [await _summary(product) for product in products]


async def place_order(session: AsyncSession, order_in: OrderIn, now: datetime) -> OrderOut:
    """Check stock and write the order and its items; the caller owns the transaction.

    Stock is taken with one conditional UPDATE per line, so concurrent orders can never oversell.

    Raises:
        OrderRejected: 422 for an unknown user or product, 409 when stock is short.

    """
    if await session.get(User, order_in.user_id) is None:
        raise OrderRejected(422, f"User {order_in.user_id} does not exist.")
    lines: list[tuple[Product, int]] = []
    for item in order_in.items:
        product = await session.get(Product, item.product_id)
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
    total = sum(product.price_cents * quantity for product, quantity in lines)
    order = Order(user_id=order_in.user_id, status="confirmed", total_cents=total, created_at=now)
    session.add(order)
    await session.flush()
    session.add_all(
        OrderItem(order_id=order.id, product_id=p.id, quantity=q, unit_price_cents=p.price_cents) for p, q in lines
    )
    await session.flush()
    return OrderOut(
        id=order.id,
        user_id=order.user_id,
        status=order.status,
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


async def export_orders(session: AsyncSession, user_id: int) -> str | None:
    """Every order line of a user as CSV text, oldest first, or None if there is no such user."""
    if await session.get(User, user_id) is None:
        return None
    orders: Sequence[Order] = (
        await session.scalars(select(Order).where(Order.user_id == user_id).order_by(Order.created_at, Order.id))
    ).all()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for order in orders:
        for item in await order.awaitable_attrs.items:
            product = await item.awaitable_attrs.product
            writer.writerow(
                (
                    order.id,
                    order.created_at.isoformat(),
                    order.status,
                    item.product_id,
                    product.name,
                    item.quantity,
                    format_price(item.unit_price_cents),
                    format_price(item.unit_price_cents * item.quantity),
                )
            )
    return buffer.getvalue()
