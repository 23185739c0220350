"""Every profile serves the naive bodies, and each step's fix is visible in the statement counts and headers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import inspect, select

from overdrive.demo.database import create_engine
from overdrive.demo.indexes import INDEXES
from overdrive.demo.models import Product
from overdrive.demo.settings import PROFILES, ProfileName, ShopSettings
from overdrive.demo.workload import ShopWorkload
from tests.demo.conftest import TEST_PLAN, Shop, open_shop

pytestmark = pytest.mark.anyio

FIXED_REQUESTS = (
    "/healthz",
    "/products",
    "/products?page=3&page_size=7&sort=price_desc",
    "/products?category_id=4&min_price=5&max_price=200&sort=price_asc",
    "/products/1",
    "/products/999999999",
    "/categories/3/top?limit=20",
    "/categories/999/top",
    "/search?q=steel&page=2&page_size=5",
    "/search?q=steel",
    "/search?q=x",
    "/orders/export?user_id=2",
    "/products?page=0",
)
LISTINGS = ("/products", "/search")
STEPPED: tuple[ProfileName, ...] = tuple(p for p in PROFILES if p != "naive")
Exchange = tuple[str, str, bytes | None]


async def _responses(shop: Shop, requests: list[Exchange]) -> list[tuple[int, str, bytes]]:
    out = []
    for method, path, body in requests:
        headers = {"content-type": "application/json"} if body is not None else {}
        response = await shop.client.request(method, path, content=body, headers=headers)
        out.append((response.status_code, response.headers.get("content-type", ""), response.content))
    return out


def _without_cursor(path: str, response: tuple[int, str, bytes]) -> tuple[int, str, bytes]:
    """A database-step listing with its `next_cursor` field cut off; that field must be the last, and the only extra."""
    status, kind, body = response
    if status != 200 or path.split("?", maxsplit=1)[0] not in LISTINGS:
        return response
    cursor = json.loads(body)["next_cursor"]
    suffix = b',"next_cursor":' + json.dumps(cursor).encode() + b"}"
    assert body.endswith(suffix), path
    return status, kind, body.removesuffix(suffix) + b"}"


async def _count(shop: Shop, path: str) -> int:
    await shop.client.delete("/_demo/stats")
    response = await shop.client.get(path)
    assert response.status_code == 200, path
    stats: dict[str, dict[str, int]] = (await shop.client.get("/_demo/stats")).json()
    (route,) = stats.values()
    assert route["requests"] == 1
    return route["queries"]


class TestSameResponses:
    async def test_every_profile_returns_the_naive_bodies(self, seeded: ShopSettings) -> None:
        """Fixed and drawn requests, orders included, get the same status, type and body in every profile."""
        workload = ShopWorkload(TEST_PLAN, seed=11)
        drawn = [workload.next() for _ in range(150)]
        requests: list[Exchange] = [("GET", path, None) for path in FIXED_REQUESTS]
        requests += [(r.spec.method, r.path, r.body) for r in drawn]
        results = {}
        for profile in PROFILES:
            async with open_shop(seeded, profile) as shop:  # each starts from the same data: orders are undone
                results[profile] = await _responses(shop, requests)
        assert any(r.spec.method == "POST" for r in drawn), "the comparison covers order placement"
        for profile in STEPPED:
            for request, naive, stepped in zip(requests, results["naive"], results[profile], strict=True):
                assert naive == _without_cursor(request[1], stepped), (profile, request)

    async def test_a_read_after_an_order_shows_the_new_stock_in_every_profile(self, seeded: ShopSettings) -> None:
        """Product page, order, product page again: identical everywhere, so no cache serves the old stock."""
        (product,) = await _stocked(seeded, 1)
        order = json.dumps({"user_id": 5, "items": [{"product_id": product, "quantity": 2}]}).encode()
        requests: list[Exchange] = [
            ("GET", f"/products/{product}", None),
            ("POST", "/orders", order),
            ("GET", f"/products/{product}", None),
        ]
        results = {}
        for profile in PROFILES:
            async with open_shop(seeded, profile) as shop:
                results[profile] = await _responses(shop, requests)
        before, placed, after = results["naive"]
        assert placed[0] == 201
        assert json.loads(after[2])["stock"] == json.loads(before[2])["stock"] - 2
        assert all(results[profile] == results["naive"] for profile in PROFILES)


class TestKeysetPagination:
    @pytest.mark.parametrize(
        "query",
        [
            "sort=newest&page_size=7",
            "sort=price_asc&category_id=2&page_size=5",
            "sort=price_desc&min_price=10&page_size=9",
        ],
    )
    async def test_following_cursors_gives_the_naive_pages(self, seeded: ShopSettings, query: str) -> None:
        """Page k reached through k-1 cursors holds the same items, in the same order, as naive's page=k."""
        pages = 6
        async with open_shop(seeded, "naive") as naive:
            expected = [(await naive.client.get(f"/products?{query}&page={k}")).json() for k in range(1, pages + 1)]
        async with open_shop(seeded, "database") as shop:
            cursor = None
            for k, want in enumerate(expected, 1):
                params: dict[str, str | int] = {**dict(parse_qsl(query)), "page": k}
                if cursor is not None:
                    params["cursor"] = cursor
                got = (await shop.client.get("/products", params=params)).json()
                cursor = got.pop("next_cursor")
                assert got == want, k
                assert cursor is not None
            offset = (await shop.client.get(f"/products?{query}&page={pages}")).json()
            assert offset["items"] == expected[-1]["items"]
            assert offset["next_cursor"] is None, "a page number without a cursor is served by OFFSET"

    async def test_search_cursors_walk_the_results_to_the_end(self, seeded: ShopSettings) -> None:
        """Search results followed through cursors are naive's pages, and the last page has no cursor."""
        async with open_shop(seeded, "naive") as naive:
            first = (await naive.client.get("/search?q=steel&page_size=100")).json()
        assert first["total"] > 100
        seen: list[Any] = []
        async with open_shop(seeded, "database") as shop:
            params: dict[str, Any] = {"q": "steel", "page_size": 4}
            while True:
                page = (await shop.client.get("/search", params=params)).json()
                seen += page["items"]
                if page["next_cursor"] is None:
                    break
                params["cursor"] = page["next_cursor"]
        assert len(seen) == first["total"]
        assert seen[:100] == first["items"]
        assert len({item["id"] for item in seen}) == len(seen)

    async def test_a_tampered_cursor_gets_400(self, seeded: ShopSettings) -> None:
        async with open_shop(seeded, "database") as shop:
            cursor = (await shop.client.get("/products?page_size=3")).json()["next_cursor"]
            forged = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
            response = await shop.client.get("/products", params={"cursor": forged})
        assert response.status_code == 400
        assert "signature" in response.json()["detail"]


class TestStatementCounts:
    async def test_naive_loads_one_row_at_a_time(self, seeded: ShopSettings) -> None:
        """Naive: count and page, then a lazy load per distinct seller; a product page loads each reviewer alone."""
        async with open_shop(seeded, "naive") as shop:
            listing = (await shop.client.get("/products")).json()
            sellers = len({item["seller"]["id"] for item in listing["items"]})
            assert await _count(shop, "/products") == 2 + sellers
            reviewed = (await shop.client.get("/search?q=the&page_size=1")).json()["items"][0]["id"]
            detail = (await shop.client.get(f"/products/{reviewed}")).json()
            reviewers = len({review["user"]["id"] for review in detail["latest_reviews"]})
            assert reviewers > 1
            statements = await _count(shop, f"/products/{reviewed}")
            assert statements == 4 + reviewers, "product, seller, category, reviews, then each reviewer"

    @pytest.mark.parametrize(
        "path",
        [
            "/products",
            "/products?page=4&category_id=3&sort=price_asc",
            "/search?q=steel",
            "/products/1",
            "/categories/3/top",
            "/orders/export?user_id=2",
        ],
    )
    async def test_the_database_step_needs_two_statements_per_read(self, seeded: ShopSettings, path: str) -> None:
        """Count + page, product + reviews, category + list, user + streamed lines: two statements each."""
        async with open_shop(seeded, "database") as shop:
            assert await _count(shop, path) == 2

    async def test_the_database_step_places_an_order_in_fewer_statements(self, seeded: ShopSettings) -> None:
        """Naive: user, a read and an update per line, order, lines. Database step: one read for every line."""
        body = {"user_id": 4, "items": [{"product_id": p, "quantity": 1} for p in await _stocked(seeded, 3)]}
        counts = {}
        for profile in ("naive", "database"):
            async with open_shop(seeded, profile) as shop:
                await shop.client.delete("/_demo/stats")
                assert (await shop.client.post("/orders", json=body)).status_code == 201
                counts[profile] = (await shop.client.get("/_demo/stats")).json()["/orders"]["queries"]
        # The ORM inserts naive's lines with RETURNING: one statement each on SQLite, one batch on PostgreSQL.
        naive_lines = 3 if seeded.resolved_database_url.startswith("sqlite") else 1
        assert counts == {"naive": 1 + 2 * 3 + 1 + naive_lines, "database": 2 + 3 + 2}

    @pytest.mark.parametrize("path", ["/products/1", "/categories/3/top", "/products?category_id=3", "/search?q=oak"])
    async def test_the_caching_step_answers_repeats_without_the_database(self, seeded: ShopSettings, path: str) -> None:
        """The first read loads (two statements); the repeat comes from the cache, and still counts on its route."""
        async with open_shop(seeded, "caching") as shop:
            assert await _count(shop, path) == 2
            assert await _count(shop, path) == 0


class TestCaching:
    @pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
    def caching(self, request: pytest.FixtureRequest, seeded: ShopSettings) -> ShopSettings:
        """The seeded shop with the in-process cache only, or with Redis as L2."""
        if request.param == "memory":
            return replace(seeded, redis_url="")
        return replace(seeded, redis_url=request.getfixturevalue("redis_url"))

    async def test_an_order_invalidates_the_cached_product_page(self, caching: ShopSettings) -> None:
        """Cached page, order, page again: the new stock at once, then served from the cache again."""
        async with open_shop(caching, "caching") as shop:
            (product,) = await _stocked(caching, 1)
            before = (await shop.client.get(f"/products/{product}")).json()
            assert await _count(shop, f"/products/{product}") == 0, "the page is cached"
            order = {"user_id": 6, "items": [{"product_id": product, "quantity": 3}]}
            assert (await shop.client.post("/orders", json=order)).status_code == 201
            after = (await shop.client.get(f"/products/{product}")).json()
            assert after["stock"] == before["stock"] - 3
            assert await _count(shop, f"/products/{product}") == 0, "the new page is cached in turn"

    async def test_a_new_app_starts_with_an_empty_cache(self, caching: ShopSettings) -> None:
        """The runner resets orders between runs behind the app's back, so an app never trusts an older cache."""
        (product,) = await _stocked(caching, 1)
        async with open_shop(caching, "caching") as shop:
            stock = (await shop.client.get(f"/products/{product}")).json()["stock"]
            order = {"user_id": 6, "items": [{"product_id": product, "quantity": 1}]}
            assert (await shop.client.post("/orders", json=order)).status_code == 201
            assert (await shop.client.get(f"/products/{product}")).json()["stock"] == stock - 1
        async with open_shop(caching, "caching") as shop:  # open_shop undid the order on exit
            assert (await shop.client.get(f"/products/{product}")).json()["stock"] == stock

    async def test_public_listings_get_etags_and_304s(self, seeded: ShopSettings) -> None:
        """Listings, search and top lists are public and cacheable; a matching If-None-Match gets an empty 304."""
        async with open_shop(seeded, "caching") as shop:
            for path in ("/products?sort=price_asc", "/search?q=oak", "/categories/2/top"):
                first = await shop.client.get(path)
                assert first.headers["cache-control"] == "public, max-age=60"
                etag = first.headers["etag"]
                again = await shop.client.get(path, headers={"if-none-match": etag})
                assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)

    async def test_stock_and_personal_data_are_not_marked_cacheable(self, seeded: ShopSettings) -> None:
        """Product pages show stock and exports are personal: no Cache-Control, no stored copy, no ETag."""
        async with open_shop(seeded, "caching") as shop:
            for path in ("/products/1", "/orders/export?user_id=2", "/products/999999"):
                response = await shop.client.get(path)
                assert "cache-control" not in response.headers, path
                assert "etag" not in response.headers, path

    async def test_naive_and_database_send_no_caching_headers(self, seeded: ShopSettings) -> None:
        for profile in ("naive", "database"):
            async with open_shop(seeded, profile) as shop:
                response = await shop.client.get("/search?q=oak")
                assert "cache-control" not in response.headers
                assert "etag" not in response.headers


class TestIndexes:
    async def test_naive_runs_on_primary_keys_and_the_database_step_adds_its_indexes(
        self, seeded: ShopSettings
    ) -> None:
        """Whatever ran before on the same database, each profile starts on the schema it claims."""
        names = {index.name for index in INDEXES}
        assert await _index_names(seeded, "database") >= names
        assert await _index_names(seeded, "naive") == set()
        assert await _index_names(seeded, "caching") >= names
        assert await _index_names(seeded, "naive") == set()


async def _stocked(settings: ShopSettings, count: int) -> list[int]:
    """The lowest-numbered `count` products with at least 10 in stock."""
    engine = create_engine(settings)
    stmt = select(Product.id).where(Product.stock >= 10).order_by(Product.id).limit(count)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(stmt)).scalars())
    finally:
        await engine.dispose()


async def _index_names(settings: ShopSettings, profile: ProfileName) -> set[str]:
    async with open_shop(settings, profile):
        pass
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:

            def names(sync: Any) -> set[str]:
                inspector = inspect(sync)
                return {i["name"] or "" for t in inspector.get_table_names() for i in inspector.get_indexes(t)}

            return await conn.run_sync(names)
    finally:
        await engine.dispose()


async def test_tuned_runs_the_observability_step(seeded: ShopSettings) -> None:
    """Metrics, request ids, db time in Server-Timing, the slow-query report and JSON access lines, bodies unchanged."""
    async with open_shop(seeded, "caching") as caching:
        plain = await caching.client.get("/products/7")
        assert "x-request-id" not in plain.headers
    async with open_shop(seeded, "tuned") as tuned:
        response = await tuned.client.get("/products/7", headers={"x-request-id": "demo-check-1"})
        assert response.content == plain.content
        assert response.headers["x-request-id"] == "demo-check-1"
        timing = response.headers["server-timing"]
        assert "db;dur=" in timing
        assert "cache;dur=" in timing
        assert "app;dur=" in timing
        metrics = (await tuned.client.get("/metrics")).text
        assert 'route="/products/{product_id}"' in metrics
        report = await tuned.client.get("/_overdrive/db")  # httpx's ASGI transport is a loopback client
        assert report.json()["schema"] == "overdrive.db.report/1"
    lines = (seeded.data_dir / "logs" / "shop.jsonl").read_text().splitlines()
    access = [json.loads(line) for line in lines if "demo-check-1" in line]
    assert any(entry.get("status") == 200 and entry.get("route") == "/products/{product_id}" for entry in access)
