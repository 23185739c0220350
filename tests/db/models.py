"""A table built to trip keyset pagination: duplicate leading keys, NULLs, datetimes and UUIDs."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROWS = 150
EPOCH = datetime(2026, 1, 1, 9, 30)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[int]
    score: Mapped[int | None]
    created: Mapped[datetime]
    token: Mapped[uuid.UUID]
    name: Mapped[str]


def make_items(count: int = ROWS, seed: int = 7) -> list[Item]:
    """Rows with only 4 buckets, 6 scores plus ~25% NULL, and 10 distinct timestamps: ties everywhere."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, count * 10), count)  # ids unrelated to insertion order
    return [
        Item(
            id=ident,
            bucket=rng.randrange(4),
            score=None if rng.random() < 0.25 else rng.randrange(6),
            created=EPOCH + timedelta(minutes=rng.randrange(10), microseconds=rng.choice([0, 123456])),
            token=uuid.UUID(int=rng.getrandbits(128)),
            name=f"item-{ident}",
        )
        for ident in ids
    ]
