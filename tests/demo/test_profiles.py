"""Both profiles serve byte-identical responses, and the demo's statement counts see the N+1 loads."""

from __future__ import annotations

import pytest

from overdrive.demo.settings import ShopSettings
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
    "/search?q=x",
    "/orders/export?user_id=2",
    "/products?page=0",
)


async def _responses(shop: Shop, paths: list[tuple[str, str, bytes | None]]) -> list[tuple[int, str, bytes]]:
    out = []
    for method, path, body in paths:
        headers = {"content-type": "application/json"} if body is not None else {}
        response = await shop.client.request(method, path, content=body, headers=headers)
        out.append((response.status_code, response.headers.get("content-type", ""), response.content))
    return out


async def test_naive_and_tuned_return_identical_bodies(seeded: ShopSettings) -> None:
    workload = ShopWorkload(TEST_PLAN, seed=11)
    drawn = [workload.next() for _ in range(150)]
    requests: list[tuple[str, str, bytes | None]] = [("GET", path, None) for path in FIXED_REQUESTS]
    requests += [(r.spec.method, r.path, r.body) for r in drawn]
    results = {}
    for profile in ("naive", "tuned"):
        async with open_shop(seeded, profile) as shop:  # each starts from the same data: orders are undone
            results[profile] = await _responses(shop, requests)
    assert any(r.spec.method == "POST" for r in drawn), "the comparison covers order placement"
    for request, naive, tuned in zip(requests, results["naive"], results["tuned"], strict=True):
        assert naive == tuned, request


async def test_statement_counts_per_route_show_the_n_plus_one(shop: Shop) -> None:
    await shop.client.delete("/_demo/stats")
    await shop.client.get("/products", params={"page_size": 20})
    await shop.client.get("/products/1")
    await shop.client.get("/nowhere")
    stats = (await shop.client.get("/_demo/stats")).json()
    listing = stats["/products"]
    assert listing["requests"] == 1
    distinct_sellers = len({i["seller"]["id"] for i in (await shop.client.get("/products")).json()["items"]})
    assert listing["queries"] == 2 + distinct_sellers, "count + page + one lazy load per distinct seller"
    assert stats["/products/{product_id}"]["queries"] >= 4
    assert stats["(unmatched)"] == {"requests": 1, "queries": 0}
    await shop.client.delete("/_demo/stats")
    assert (await shop.client.get("/_demo/stats")).json() == {}
