"""The shop's schema: categories, sellers, users, products, reviews, orders and their items.

Deliberately created with primary keys only: the `naive` profile runs on exactly this, and the database step adds
its secondary indexes at app start-up (`indexes.py`). Times are naive UTC datetimes so SQLite and PostgreSQL
return identical values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only makes a rowid alias (and so auto-numbering) of a column typed exactly INTEGER.
BigID = BigInteger().with_variant(Integer(), "sqlite")
# The seed loads SQLite rows through the driver, which stores times as "YYYY-MM-DD HH:MM:SS"; SQLAlchemy must bind
# them in that same text form, or a stored time and an equal parameter (a keyset cursor's) compare as different.
# Every time in the shop is whole seconds.
_SQLITE_SECONDS = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
Timestamp = DateTime().with_variant(sqlite.DATETIME(storage_format=_SQLITE_SECONDS), "sqlite")  # type: ignore[no-untyped-call]

__all__ = ["Base", "Category", "Order", "OrderItem", "Product", "Review", "SeedInfo", "Seller", "User"]


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of the shop schema; `AsyncAttrs` gives async code its lazy loads."""


class SeedInfo(Base):
    """One row describing the seed that filled this database, so a second run can skip seeding."""

    __tablename__ = "seed_info"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    scale: Mapped[float] = mapped_column(Float)
    digest: Mapped[str] = mapped_column(String(64))
    max_order_id: Mapped[int] = mapped_column(BigInteger)


class Category(Base):
    """A product category."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    slug: Mapped[str] = mapped_column(String(80))


class Seller(Base):
    """A merchant selling products in the shop."""

    __tablename__ = "sellers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    rating: Mapped[float] = mapped_column(Float)
    joined_at: Mapped[datetime] = mapped_column(Timestamp)


class User(Base):
    """A shopper."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Product(Base):
    """A product listed by a seller; rating and review count are kept denormalised, as real shops do."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("sellers.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    rating_avg: Mapped[float] = mapped_column(Float)
    review_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    category: Mapped[Category] = relationship(lazy="select")
    seller: Mapped[Seller] = relationship(lazy="select")


class Review(Base):
    """A user's review of a product."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    user: Mapped[User] = relationship(lazy="select")


class Order(Base):
    """A user's order; its items hold the unit price paid."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    items: Mapped[list[OrderItem]] = relationship(lazy="select", order_by="OrderItem.id")


class OrderItem(Base):
    """One line of an order."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)

    product: Mapped[Product] = relationship(lazy="select")
