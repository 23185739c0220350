"""Request and response bodies of the shop API (pydantic models, as FastAPI users write them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CategoryOut",
    "KeysetPage",
    "OrderIn",
    "OrderItemIn",
    "OrderItemOut",
    "OrderOut",
    "ProductDetail",
    "ProductPage",
    "ProductSummary",
    "ReviewOut",
    "SellerOut",
    "UserRef",
    "format_price",
]

MAX_ORDER_LINES = 50
MAX_QUANTITY = 100


def format_price(cents: int) -> str:
    """Render an amount in cents as a decimal string, e.g. 1999 -> "19.99"."""
    return f"{cents // 100}.{cents % 100:02d}"


class SellerOut(BaseModel):
    """The seller shown with a product."""

    id: int
    name: str
    country: str
    rating: float


class CategoryOut(BaseModel):
    """A category reference."""

    id: int
    name: str


class UserRef(BaseModel):
    """The public part of a user, shown with their reviews."""

    id: int
    name: str


class ProductSummary(BaseModel):
    """A product in a list."""

    id: int
    name: str
    price: str
    category_id: int
    seller: SellerOut
    rating_avg: float
    review_count: int
    created_at: datetime


class ProductPage(BaseModel):
    """One page of a product listing or search."""

    items: list[ProductSummary]
    page: int
    page_size: int
    total: int


class KeysetPage(ProductPage):
    """A page from the database step: the same fields, plus the cursor that fetches the next page in O(page)."""

    next_cursor: str | None


class ReviewOut(BaseModel):
    """A review with its author."""

    id: int
    rating: int
    title: str
    body: str
    created_at: datetime
    user: UserRef


class ProductDetail(ProductSummary):
    """A product page: the summary plus description, stock, category and the latest reviews."""

    description: str
    stock: int
    category: CategoryOut
    latest_reviews: list[ReviewOut]


class OrderItemIn(BaseModel):
    """One line of a new order."""

    model_config = ConfigDict(extra="forbid")

    product_id: Annotated[int, Field(gt=0)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class OrderIn(BaseModel):
    """A new order: who buys, and what."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[int, Field(gt=0)]
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=MAX_ORDER_LINES)]

    @field_validator("items")
    @classmethod
    def _distinct_products(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        seen: set[int] = set()
        for item in items:
            if item.product_id in seen:
                msg = f"product {item.product_id} appears more than once; put the whole quantity on one line"
                raise ValueError(msg)
            seen.add(item.product_id)
        return items


class OrderItemOut(BaseModel):
    """One line of a placed order."""

    product_id: int
    name: str
    quantity: int
    unit_price: str
    line_total: str


class OrderOut(BaseModel):
    """A placed order."""

    id: int
    user_id: int
    status: str
    total: str
    created_at: datetime
    items: list[OrderItemOut]
