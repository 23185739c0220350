"""Deterministic generation of the shop's data set.

The same `SeedPlan` always yields the same rows, on every machine and Python run: each table draws from its own
`random.Random` seeded with a string (hashed with SHA-512 by `random`, so `PYTHONHASHSEED` has no effect).
Popularity is skewed the way real shops are: product popularity follows a Zipf-like law over a shuffled id
space, so a few products draw most reviews and orders while a long tail draws almost none, and a handful of
"power users" place a large share of the orders.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from overdrive.demo import _words as words

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "DEFAULT_SEED",
    "EPOCH",
    "HOT_PRODUCTS_SHARE",
    "SEED_VERSION",
    "Batch",
    "Digest",
    "SeedPlan",
    "generate",
    "popular_products",
]

SEED_VERSION = 1
DEFAULT_SEED = 20_261_126
EPOCH = datetime(2026, 1, 1)
_BATCH_ROWS = 10_000
_THREE_YEARS = 3 * 365 * 86_400
_ZIPF_EXPONENT = 1.07
HOT_PRODUCTS_SHARE = 0.02
_HOT_STOCK = 1_000_000


@dataclass(frozen=True, kw_only=True)
class SeedPlan:
    """What to generate: the random seed and a scale factor (1.0 = 100,000 products, 500,000 reviews)."""

    seed: int = DEFAULT_SEED
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.001 <= self.scale <= 10:  # noqa: PLR2004 - documented bounds of the scale factor
            msg = f"The seed scale must lie between 0.001 and 10, not {self.scale!r}."
            raise ValueError(msg)

    def _count(self, base: int, floor: int) -> int:
        return max(floor, round(base * self.scale))

    @property
    def categories(self) -> int:
        """Number of categories (fixed: the catalogue's departments)."""
        return len(words.CATEGORY_NAMES)

    @property
    def sellers(self) -> int:
        """Number of sellers."""
        return self._count(2_000, 10)

    @property
    def users(self) -> int:
        """Number of users."""
        return self._count(50_000, 50)

    @property
    def power_users(self) -> int:
        """Users with ids 1..N who place 30% of all orders (their CSV exports are large)."""
        return self._count(20, 2)

    @property
    def products(self) -> int:
        """Number of products."""
        return self._count(100_000, 200)

    @property
    def reviews(self) -> int:
        """Number of reviews."""
        return self._count(500_000, 1_000)

    @property
    def orders(self) -> int:
        """Number of orders (each has one to five items)."""
        return self._count(100_000, 200)

    @property
    def estimated_rows(self) -> int:
        """Rows `generate` yields, with order items estimated at their expected 2.9 per order."""
        fixed = self.categories + self.sellers + self.users + self.products + self.reviews + self.orders
        return fixed + round(self.orders * 2.9)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one table, in the column order of the table's definition."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _rng(plan: SeedPlan, stream: str) -> random.Random:
    return random.Random(f"overdrive-shop/v{SEED_VERSION}/{plan.seed}/{stream}")


def _moment(rng: random.Random, span: int = _THREE_YEARS) -> datetime:
    return EPOCH - timedelta(seconds=rng.randrange(span))


def _chunks(table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> Iterator[Batch]:
    while chunk := list(itertools.islice(rows, _BATCH_ROWS)):
        yield Batch(table, columns, chunk)


def _zipf_cum_weights(n: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, n + 1)))


@dataclass(slots=True)
class _Catalogue:
    """Product facts later tables need: popularity order, prices, quality, creation times."""

    by_popularity: list[int]
    popularity_cum: list[float]
    prices: list[int]
    quality: list[float]
    created: list[datetime]


def _categories(plan: SeedPlan) -> Iterator[Batch]:
    rows = ((i, name, name.lower()) for i, name in enumerate(words.CATEGORY_NAMES[: plan.categories], 1))
    yield from _chunks("categories", ("id", "name", "slug"), rows)


def _sellers(plan: SeedPlan) -> Iterator[Batch]:
    rng = _rng(plan, "sellers")

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, plan.sellers + 1):
            name = f"{rng.choice(words.ADJECTIVES).title()} {rng.choice(words.NOUNS).title()}s #{i}"
            yield (i, name, rng.choice(words.COUNTRIES), round(rng.uniform(3.0, 5.0), 2), _moment(rng))

    yield from _chunks("sellers", ("id", "name", "country", "rating", "joined_at"), rows())


def _users(plan: SeedPlan) -> Iterator[Batch]:
    rng = _rng(plan, "users")

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, plan.users + 1):
            name = f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"
            yield (i, f"user{i}@example.com", name, rng.choice(words.COUNTRIES), _moment(rng))

    yield from _chunks("users", ("id", "email", "name", "country", "created_at"), rows())


def _text(rng: random.Random, vocabulary: Sequence[str], low: int, high: int) -> str:
    return " ".join(rng.choices(vocabulary, k=rng.randint(low, high)))


def _popularity_order(rng: random.Random, n: int) -> list[int]:
    order = list(range(1, n + 1))
    rng.shuffle(order)
    return order


def popular_products(plan: SeedPlan) -> tuple[list[int], list[float]]:
    """Product ids from most to least popular, and the cumulative Zipf weights to draw them with.

    Load drivers use this to hit products with the same skew as the seeded reviews and orders; it costs one
    shuffle, not a full generation.
    """
    order = _popularity_order(_rng(plan, "products"), plan.products)
    return order, _zipf_cum_weights(plan.products, _ZIPF_EXPONENT)


def _catalogue(plan: SeedPlan) -> tuple[_Catalogue, list[tuple[Any, ...]]]:
    """Draw every product's own facts; rating columns are filled in once reviews are known."""
    rng = _rng(plan, "products")
    n = plan.products
    by_popularity = _popularity_order(rng, n)
    seller_cum = _zipf_cum_weights(plan.sellers, 0.8)
    sellers = rng.choices(range(1, plan.sellers + 1), cum_weights=seller_cum, k=n)
    category_cum = _zipf_cum_weights(plan.categories, 0.5)
    categories = rng.choices(range(1, plan.categories + 1), cum_weights=category_cum, k=n)
    description_words = words.FILLER + words.MATERIALS + words.NOUNS + words.ADJECTIVES
    base: list[tuple[Any, ...]] = []
    prices, quality, created = [0] * (n + 1), [0.0] * (n + 1), [EPOCH] * (n + 1)
    for i in range(1, n + 1):
        name = (
            f"{rng.choice(words.ADJECTIVES).title()} {rng.choice(words.MATERIALS).title()} "
            f"{rng.choice(words.NOUNS).title()} {rng.randint(1, 999)}"
        )
        prices[i] = max(99, round(rng.lognormvariate(8.0, 1.1)))
        quality[i] = rng.uniform(1.8, 4.9)
        created[i] = _moment(rng)
        stock = 0 if rng.random() < 0.05 else rng.randint(1, 500)  # noqa: PLR2004 - 5% sold out
        description = _text(rng, description_words, 40, 120)
        base.append((i, categories[i - 1], sellers[i - 1], name, description, prices[i], stock, created[i]))
    hot = round(n * HOT_PRODUCTS_SHARE)
    for product_id in by_popularity[:hot]:
        row = base[product_id - 1]
        base[product_id - 1] = (*row[:6], _HOT_STOCK, row[7])
    catalogue = _Catalogue(by_popularity, _zipf_cum_weights(n, _ZIPF_EXPONENT), prices, quality, created)
    return catalogue, base


def _review_keys(plan: SeedPlan, cat: _Catalogue) -> tuple[list[int], list[int], list[int]]:
    rng = _rng(plan, "review-keys")
    products = rng.choices(cat.by_popularity, cum_weights=cat.popularity_cum, k=plan.reviews)
    users = [rng.randint(1, plan.users) for _ in products]
    ratings = [min(5, max(1, round(rng.gauss(cat.quality[p], 0.9)))) for p in products]
    return products, users, ratings


def _products(base: list[tuple[Any, ...]], review_products: list[int], ratings: list[int]) -> Iterator[Batch]:
    totals = [0] * (len(base) + 1)
    counts = [0] * (len(base) + 1)
    for product_id, rating in zip(review_products, ratings, strict=True):
        totals[product_id] += rating
        counts[product_id] += 1
    rows = (
        (
            *row[:7],
            round(totals[row[0]] / counts[row[0]], 2) if counts[row[0]] else 0.0,
            counts[row[0]],
            row[7],
        )
        for row in base
    )
    columns = (
        "id", "category_id", "seller_id", "name", "description", "price_cents", "stock",
        "rating_avg", "review_count", "created_at",
    )  # fmt: skip
    yield from _chunks("products", columns, rows)


def _reviews(plan: SeedPlan, cat: _Catalogue, keys: tuple[list[int], list[int], list[int]]) -> Iterator[Batch]:
    rng = _rng(plan, "review-text")
    body_words = words.FILLER + words.ADJECTIVES

    def rows() -> Iterator[tuple[Any, ...]]:
        for i, (product_id, user_id, rating) in enumerate(zip(*keys, strict=True), 1):
            age = (EPOCH - cat.created[product_id]).total_seconds()
            at = EPOCH - timedelta(seconds=rng.randrange(max(1, int(age))))
            title = f"{words.REVIEW_OPENERS[rng.randrange(10)]} {_text(rng, words.FILLER, 1, 4)}"
            yield (i, product_id, user_id, rating, title, _text(rng, body_words, 8, 60), at)

    columns = ("id", "product_id", "user_id", "rating", "title", "body", "created_at")
    yield from _chunks("reviews", columns, rows())


def _orders(plan: SeedPlan, cat: _Catalogue) -> Iterator[Batch]:
    rng = _rng(plan, "orders")
    order_columns = ("id", "user_id", "status", "total_cents", "created_at")
    item_columns = ("id", "order_id", "product_id", "quantity", "unit_price_cents")
    item_id = 0
    for start in range(1, plan.orders + 1, _BATCH_ROWS):
        orders: list[tuple[Any, ...]] = []
        items: list[tuple[Any, ...]] = []
        for order_id in range(start, min(start + _BATCH_ROWS, plan.orders + 1)):
            power = rng.random() < 0.3  # noqa: PLR2004 - power users' share of orders
            user_id = rng.randint(1, plan.power_users) if power else rng.randint(1, plan.users)
            picks = rng.choices(cat.by_popularity, cum_weights=cat.popularity_cum, k=rng.randint(1, 5))
            total = 0
            for product_id in dict.fromkeys(picks):
                item_id += 1
                quantity = rng.randint(1, 3)
                total += quantity * cat.prices[product_id]
                items.append((item_id, order_id, product_id, quantity, cat.prices[product_id]))
            status = rng.choices(("delivered", "shipped", "cancelled"), weights=(85, 10, 5))[0]
            orders.append((order_id, user_id, status, total, _moment(rng, 2 * 365 * 86_400)))
        yield Batch("orders", order_columns, orders)
        yield Batch("order_items", item_columns, items)


def generate(plan: SeedPlan) -> Iterator[Batch]:
    """Yield the whole data set as batches, parents before children, in a fixed order.

    Args:
        plan: the seed and scale to generate.

    Yields:
        Batches of at most 10,000 rows, in an order that satisfies every foreign key.

    """
    yield from _categories(plan)
    yield from _sellers(plan)
    yield from _users(plan)
    catalogue, base = _catalogue(plan)
    keys = _review_keys(plan, catalogue)
    yield from _products(base, keys[0], keys[2])
    yield from _reviews(plan, catalogue, keys)
    yield from _orders(plan, catalogue)


class Digest:
    """A running SHA-256 over generated batches: equal digests mean equal data sets."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, batch: Batch) -> None:
        """Fold one batch into the digest."""
        self._hash.update(batch.table.encode())
        self._hash.update(repr(batch.rows).encode())

    def hexdigest(self) -> str:
        """The digest so far, as 64 hex characters."""
        return self._hash.hexdigest()
