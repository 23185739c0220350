"""The seed generator is deterministic, consistent and skewed like a real shop."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from overdrive.demo.generator import HOT_PRODUCTS_SHARE, Batch, Digest, SeedPlan, generate, popular_products

SMALL = SeedPlan(scale=0.01)


def _tables(plan: SeedPlan) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for batch in generate(plan):
        tables[batch.table].extend(batch.rows)
    return tables


def _digest(plan: SeedPlan) -> str:
    digest = Digest()
    for batch in generate(plan):
        digest.update(batch)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tables() -> dict[str, list[tuple[Any, ...]]]:
    return _tables(SMALL)


class TestDeterminism:
    def test_the_same_plan_yields_the_same_data(self) -> None:
        assert _digest(SMALL) == _digest(SeedPlan(scale=0.01))

    def test_another_seed_yields_other_data(self) -> None:
        assert _digest(SMALL) != _digest(SeedPlan(seed=SMALL.seed + 1, scale=0.01))

    def test_digest_covers_table_names(self) -> None:
        a, b = Digest(), Digest()
        a.update(Batch("users", ("id",), [(1,)]))
        b.update(Batch("sellers", ("id",), [(1,)]))
        assert a.hexdigest() != b.hexdigest()

    def test_popular_products_match_the_generated_catalogue(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        order, cum = popular_products(SMALL)
        assert sorted(order) == list(range(1, SMALL.products + 1))
        assert len(cum) == len(order)
        assert cum == sorted(cum)
        reviews = Counter(row[1] for row in tables["reviews"])
        head = order[: len(order) // 100]
        assert sum(reviews[p] for p in head) > sum(reviews[p] for p in order[-len(head) :])


class TestShape:
    def test_counts_follow_the_plan(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        assert len(tables["categories"]) == SMALL.categories
        assert len(tables["sellers"]) == SMALL.sellers
        assert len(tables["users"]) == SMALL.users
        assert len(tables["products"]) == SMALL.products
        assert len(tables["reviews"]) == SMALL.reviews
        assert len(tables["orders"]) == SMALL.orders
        total = sum(len(rows) for rows in tables.values())
        assert abs(total - SMALL.estimated_rows) / total < 0.05

    def test_full_scale_meets_the_brief(self) -> None:
        plan = SeedPlan()
        assert plan.products >= 100_000
        assert plan.reviews >= 500_000

    def test_ids_are_dense_and_foreign_keys_resolve(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        for name, rows in tables.items():
            assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), name
        products, users = len(tables["products"]), len(tables["users"])
        assert all(1 <= r[1] <= SMALL.categories and 1 <= r[2] <= SMALL.sellers for r in tables["products"])
        assert all(1 <= r[1] <= products and 1 <= r[2] <= users for r in tables["reviews"])
        orders = {r[0]: r for r in tables["orders"]}
        assert all(r[1] in orders and 1 <= r[2] <= products for r in tables["order_items"])

    def test_denormalised_ratings_match_the_reviews(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        ratings: dict[int, list[int]] = defaultdict(list)
        for review in tables["reviews"]:
            ratings[review[1]].append(review[3])
        for product in tables["products"]:
            given = ratings.get(product[0], [])
            assert product[8] == len(given)
            assert product[7] == (round(sum(given) / len(given), 2) if given else 0.0)

    def test_order_totals_add_up(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        totals: Counter[int] = Counter()
        for item in tables["order_items"]:
            totals[item[1]] += item[3] * item[4]
        assert all(order[3] == totals[order[0]] for order in tables["orders"])

    def test_popularity_is_skewed(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        per_product = sorted(Counter(r[1] for r in tables["reviews"]).values(), reverse=True)
        hot = round(SMALL.products * HOT_PRODUCTS_SHARE)
        assert sum(per_product[:hot]) > 0.25 * SMALL.reviews, "2% of products draw over a quarter of reviews"
        reviewed = len(per_product)
        assert reviewed < 0.9 * SMALL.products, "a long tail of products has no reviews at all"

    def test_power_users_order_a_lot(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        per_user = Counter(r[1] for r in tables["orders"])
        power = sum(per_user[u] for u in range(1, SMALL.power_users + 1))
        assert power > 0.2 * SMALL.orders

    def test_some_products_are_sold_out_and_hot_ones_deeply_stocked(
        self, tables: dict[str, list[tuple[Any, ...]]]
    ) -> None:
        stock = [r[6] for r in tables["products"]]
        assert 0 < stock.count(0) < 0.1 * len(stock)
        order, _ = popular_products(SMALL)
        hottest = tables["products"][order[0] - 1]
        assert hottest[6] >= 100_000


@pytest.mark.parametrize("scale", [0, -1, 0.0001, 11])
def test_out_of_range_scale_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match=r"between 0\.001 and 10"):
        SeedPlan(scale=scale)
