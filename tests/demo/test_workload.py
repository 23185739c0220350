"""The demo workload: deterministic, weighted as declared, and every request it draws is valid."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from overdrive.demo.workload import MIX, RequestSpec, ShopWorkload
from tests.demo.conftest import TEST_PLAN, Shop

pytestmark = pytest.mark.anyio


def test_the_same_seed_draws_the_same_requests() -> None:
    a, b = ShopWorkload(TEST_PLAN, seed=3), ShopWorkload(TEST_PLAN, seed=3)
    assert [a.next() for _ in range(200)] == [b.next() for _ in range(200)]
    c = ShopWorkload(TEST_PLAN, seed=4)
    assert [a.next() for _ in range(50)] != [c.next() for _ in range(50)]


def test_the_mix_follows_its_weights() -> None:
    workload = ShopWorkload(TEST_PLAN, seed=5)
    drawn = Counter(workload.next().spec.name for _ in range(20_000))
    total_weight = sum(spec.weight for spec in MIX)
    for spec in MIX:
        share = drawn[spec.name] / 20_000
        assert share == pytest.approx(spec.weight / total_weight, abs=0.015), spec.name


def test_orders_buy_deeply_stocked_products_for_ordinary_users() -> None:
    workload = ShopWorkload(TEST_PLAN, seed=6)
    orders = [r for r in (workload.next() for _ in range(2_000)) if r.spec.route == "/orders"]
    assert orders
    for request in orders:
        assert request.body is not None
        body = orjson.loads(request.body)
        assert body["user_id"] > TEST_PLAN.power_users
        assert len({i["product_id"] for i in body["items"]}) == len(body["items"])


def test_an_unknown_route_is_refused() -> None:
    workload = ShopWorkload(TEST_PLAN, mix=(RequestSpec(method="GET", route="/admin", weight=1),))
    with pytest.raises(ValueError, match="no request generator for route '/admin'"):
        workload.next()


async def test_every_drawn_request_succeeds_against_the_app(shop: Shop) -> None:
    workload = ShopWorkload(TEST_PLAN, seed=8)
    statuses: Counter[int] = Counter()
    for _ in range(120):
        request = workload.next()
        headers = {"content-type": "application/json"} if request.body else {}
        response = await shop.client.request(request.spec.method, request.path, content=request.body, headers=headers)
        statuses[response.status_code] += 1
        assert response.status_code < 400, (request, response.text)
    assert statuses[201] > 0
