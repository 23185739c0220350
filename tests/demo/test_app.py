"""The shop API on SQLite and PostgreSQL: each endpoint's contract, bad input, and order integrity."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest
from sqlalchemy import func, select

from overdrive.demo.database import create_engine
from overdrive.demo.models import Order, OrderItem, Product
from tests.demo.conftest import TEST_PLAN, Shop

pytestmark = pytest.mark.anyio


async def _scalar(shop: Shop, stmt: Any) -> Any:
    engine = create_engine(shop.settings)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()
    finally:
        await engine.dispose()


async def _stock(shop: Shop, product_id: int) -> int:
    stock: int = await _scalar(shop, select(Product.stock).where(Product.id == product_id))
    return stock


async def _order_count(shop: Shop) -> int:
    count: int = await _scalar(shop, select(func.count()).select_from(Order))
    return count


async def _in_stock_product(shop: Shop, minimum: int = 1, maximum: int = 10**9, other_than: int = 0) -> tuple[int, int]:
    """The lowest-numbered product whose stock lies in [minimum, maximum], with its stock."""
    engine = create_engine(shop.settings)
    stmt = (
        select(Product.id, Product.stock)
        .where(Product.stock.between(minimum, maximum), Product.id != other_than)
        .order_by(Product.id)
        .limit(1)
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(stmt)).one()
    finally:
        await engine.dispose()
    return row[0], row[1]


class TestReads:
    async def test_healthz_answers_ok(self, shop: Shop) -> None:
        response = await shop.client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_products_are_filtered_by_category_and_price(self, shop: Shop) -> None:
        response = await shop.client.get(
            "/products", params={"category_id": 2, "min_price": "10", "max_price": "90.50", "page_size": 100}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["items"], "the test plan has products in category 2 in that range"
        for item in body["items"]:
            assert item["category_id"] == 2
            assert 1000 <= round(float(item["price"]) * 100) <= 9050
        assert body["total"] >= len(body["items"])

    @pytest.mark.parametrize(
        ("sort", "key", "reverse"),
        [("price_asc", "price", False), ("price_desc", "price", True), ("newest", "created_at", True)],
    )
    async def test_products_are_sorted(self, shop: Shop, sort: str, key: str, reverse: bool) -> None:
        response = await shop.client.get("/products", params={"sort": sort, "page_size": 50})
        items = response.json()["items"]
        values = [float(i[key]) if key == "price" else i[key] for i in items]
        assert values == sorted(values, reverse=reverse)

    async def test_pages_do_not_overlap_and_share_the_total(self, shop: Shop) -> None:
        first = (await shop.client.get("/products", params={"page": 1, "page_size": 10})).json()
        second = (await shop.client.get("/products", params={"page": 2, "page_size": 10})).json()
        assert first["total"] == second["total"] == TEST_PLAN.products
        assert {i["id"] for i in first["items"]}.isdisjoint({i["id"] for i in second["items"]})
        assert second["page"] == 2
        assert second["page_size"] == 10

    async def test_product_detail_has_seller_category_and_latest_reviews(self, shop: Shop) -> None:
        top = (await shop.client.get("/search", params={"q": "the", "page_size": 1})).json()["items"][0]
        response = await shop.client.get(f"/products/{top['id']}")
        assert response.status_code == 200
        detail = response.json()
        assert detail["seller"]["id"] == top["seller"]["id"]
        assert detail["category"]["id"] == detail["category_id"]
        reviews = detail["latest_reviews"]
        assert 0 < len(reviews) <= 5
        assert [r["created_at"] for r in reviews] == sorted((r["created_at"] for r in reviews), reverse=True)
        assert all(r["user"]["name"] for r in reviews)

    async def test_category_top_is_ordered_by_rating(self, shop: Shop) -> None:
        response = await shop.client.get("/categories/1/top", params={"limit": 5})
        assert response.status_code == 200
        items = response.json()
        assert 0 < len(items) <= 5
        assert all(i["category_id"] == 1 and i["review_count"] >= 3 for i in items)
        ratings = [i["rating_avg"] for i in items]
        assert ratings == sorted(ratings, reverse=True)

    async def test_search_matches_name_or_description_case_insensitively(self, shop: Shop) -> None:
        lower = (await shop.client.get("/search", params={"q": "kettle", "page_size": 100})).json()
        upper = (await shop.client.get("/search", params={"q": "KETTLE", "page_size": 100})).json()
        assert lower == upper
        assert lower["total"] > 0
        for item in lower["items"]:
            detail = (await shop.client.get(f"/products/{item['id']}")).json()
            assert "kettle" in (detail["name"] + detail["description"]).lower()

    async def test_search_treats_wildcards_literally(self, shop: Shop) -> None:
        response = await shop.client.get("/search", params={"q": "%_"})
        assert response.status_code == 200
        assert response.json()["total"] == 0

    async def test_export_is_csv_of_the_users_order_lines(self, shop: Shop) -> None:
        response = await shop.client.get("/orders/export", params={"user_id": 1})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert 'filename="orders-1.csv"' in response.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0][:3] == ["order_id", "created_at", "status"]
        user_lines = await _scalar(
            shop, select(func.count()).select_from(OrderItem).join(Order).where(Order.user_id == 1)
        )
        assert len(rows) - 1 == user_lines > 0


class TestBadInput:
    @pytest.mark.parametrize(
        "params",
        [
            {"page": 0},
            {"page_size": 101},
            {"sort": "cheapest"},
            {"category_id": "abc"},
            {"min_price": "-1"},
            {"min_price": "1.234"},
            {"min_price": "50", "max_price": "10"},
        ],
    )
    async def test_invalid_listing_parameters_get_422_with_a_message(self, shop: Shop, params: dict[str, Any]) -> None:
        response = await shop.client.get("/products", params=params)
        assert response.status_code == 422
        assert response.json()["detail"]

    @pytest.mark.parametrize("q", ["", "a", "  ", "x" * 65])
    async def test_invalid_search_gets_422(self, shop: Shop, q: str) -> None:
        response = await shop.client.get("/search", params={"q": q})
        assert response.status_code == 422

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("/products/999999999", "Product 999999999 does not exist."),
            ("/categories/999/top", "Category 999 does not exist."),
            ("/orders/export?user_id=999999999", "User 999999999 does not exist."),
        ],
    )
    async def test_unknown_ids_get_404(self, shop: Shop, path: str, message: str) -> None:
        response = await shop.client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": message}

    async def test_non_numeric_ids_get_422(self, shop: Shop) -> None:
        assert (await shop.client.get("/products/abc")).status_code == 422
        assert (await shop.client.get("/products/-3")).status_code == 422


class TestOrders:
    async def test_an_order_is_written_confirmed_and_takes_stock(self, shop: Shop) -> None:
        product_id, stock = await _in_stock_product(shop, minimum=2)
        before = await _order_count(shop)
        response = await shop.client.post(
            "/orders", json={"user_id": 7, "items": [{"product_id": product_id, "quantity": 2}]}
        )
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["user_id"] == 7
        assert order["status"] == "confirmed"
        assert order["created_at"] == "2026-06-01T12:00:00"
        line = order["items"][0]
        assert line["quantity"] == 2
        assert float(line["line_total"]) == pytest.approx(2 * float(line["unit_price"]))
        assert order["total"] == line["line_total"]
        assert await _stock(shop, product_id) == stock - 2
        assert await _order_count(shop) == before + 1
        assert shop.mailer.sent == [order["id"]]

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b"[]",
            b'{"user_id": 1}',
            b'{"user_id": 1, "items": []}',
            b'{"user_id": 1, "items": [{"product_id": 1, "quantity": 0}]}',
            b'{"user_id": 1, "items": [{"product_id": 1, "quantity": 101}]}',
            b'{"user_id": 1, "items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]}',
            b'{"user_id": 1, "items": [{"product_id": 1, "quantity": 1, "price": "0.01"}]}',
            b'{"user_id": "me", "items": [{"product_id": 1, "quantity": 1}]}',
        ],
    )
    async def test_malformed_orders_get_422_and_write_nothing(self, shop: Shop, body: bytes) -> None:
        before = await _order_count(shop)
        response = await shop.client.post("/orders", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert response.json()["detail"]
        assert await _order_count(shop) == before
        assert shop.mailer.sent == []

    async def test_unknown_user_or_product_gets_422_and_writes_nothing(self, shop: Shop) -> None:
        product_id, stock = await _in_stock_product(shop)
        before = await _order_count(shop)
        unknown_user = {"user_id": 10**9, "items": [{"product_id": product_id, "quantity": 1}]}
        response = await shop.client.post("/orders", json=unknown_user)
        assert (response.status_code, response.json()) == (422, {"detail": f"User {10**9} does not exist."})
        unknown_product = {
            "user_id": 1,
            "items": [{"product_id": product_id, "quantity": 1}, {"product_id": 10**9, "quantity": 1}],
        }
        response = await shop.client.post("/orders", json=unknown_product)
        assert (response.status_code, response.json()) == (422, {"detail": f"Product {10**9} does not exist."})
        assert await _stock(shop, product_id) == stock, "the first line's stock was given back"
        assert await _order_count(shop) == before

    async def test_overselling_gets_409_and_writes_nothing(self, shop: Shop) -> None:
        plenty, plenty_stock = await _in_stock_product(shop, minimum=5)
        scarce, scarce_stock = await _in_stock_product(shop, minimum=1, maximum=99, other_than=plenty)
        before = await _order_count(shop)
        wanted = scarce_stock + 1
        body = {
            "user_id": 3,
            "items": [{"product_id": plenty, "quantity": 1}, {"product_id": scarce, "quantity": wanted}],
        }
        response = await shop.client.post("/orders", json=body)
        assert response.status_code == 409
        assert response.json() == {"detail": f"Product {scarce} does not have {wanted} in stock."}
        assert await _stock(shop, plenty) == plenty_stock, "the first line's stock was given back"
        assert await _stock(shop, scarce) == scarce_stock
        assert await _order_count(shop) == before
        assert shop.mailer.sent == []

    async def test_concurrent_orders_never_oversell(self, shop: Shop) -> None:
        product_id, stock = await _in_stock_product(shop, minimum=5, maximum=30)
        attempts = stock + 5
        body = {"user_id": 9, "items": [{"product_id": product_id, "quantity": 1}]}
        responses = await asyncio.gather(*(shop.client.post("/orders", json=body) for _ in range(attempts)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * stock + [409] * 5
        assert await _stock(shop, product_id) == 0
