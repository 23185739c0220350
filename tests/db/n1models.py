"""The N+1 fixture: 100 authors with 3 books each, every book on one of 5 shelves."""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

AUTHORS = 100
BOOKS_PER_AUTHOR = 3
SHELVES = 5


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "n1_shelves"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str]


class Author(Base):
    __tablename__ = "n1_authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "n1_books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("n1_authors.id"))
    shelf_id: Mapped[int] = mapped_column(ForeignKey("n1_shelves.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    shelf: Mapped[Shelf] = relationship()


def make_rows() -> list[Base]:
    shelves: list[Base] = [Shelf(id=i, label=f"shelf {i}") for i in range(1, SHELVES + 1)]
    authors: list[Base] = [
        Author(
            id=a,
            name=f"author {a}",
            books=[
                Book(id=a * 10 + b, title=f"book {a}.{b}", shelf_id=(a + b) % SHELVES + 1)
                for b in range(BOOKS_PER_AUTHOR)
            ],
        )
        for a in range(1, AUTHORS + 1)
    ]
    return shelves + authors
