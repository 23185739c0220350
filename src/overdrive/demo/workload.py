"""The demo's traffic: a weighted mix of shop requests, drawn with the same skew as the seeded data.

Product ids follow the seed's popularity law (a few hot products get most views); orders buy hot products,
which the seed stocks deeply, so the mix never runs out of stock mid-run. Power users (ids 1..N, whose exports
run to hundreds of kilobytes) are left out of the export mix: one of their naive exports takes seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from overdrive.demo import _words as words
from overdrive.demo.generator import HOT_PRODUCTS_SHARE, SeedPlan, popular_products

__all__ = ["Request", "RequestSpec", "ShopWorkload"]


@dataclass(frozen=True, kw_only=True)
class RequestSpec:
    """One kind of request in the mix; `route` is the app's route template, which the app's stats use too."""

    method: str
    route: str
    weight: int

    @property
    def name(self) -> str:
        """The name reports use, e.g. ``GET /products/{product_id}``."""
        return f"{self.method} {self.route}"


@dataclass(frozen=True, slots=True)
class Request:
    """One concrete request to send."""

    spec: RequestSpec
    path: str
    body: bytes | None = None


MIX = (
    RequestSpec(method="GET", route="/products", weight=25),
    RequestSpec(method="GET", route="/products/{product_id}", weight=40),
    RequestSpec(method="GET", route="/categories/{category_id}/top", weight=10),
    RequestSpec(method="GET", route="/search", weight=10),
    RequestSpec(method="POST", route="/orders", weight=10),
    RequestSpec(method="GET", route="/orders/export", weight=5),
)


class ShopWorkload:
    """Draws requests from the shop mix; the same seed gives the same request sequence."""

    def __init__(self, plan: SeedPlan, *, seed: int = 1, mix: tuple[RequestSpec, ...] = MIX) -> None:
        self.plan = plan
        self.mix = mix
        self._rng = random.Random(seed)
        self._weights = [spec.weight for spec in mix]
        self._popular, self._popular_cum = popular_products(plan)
        self._hot = self._popular[: max(1, round(plan.products * HOT_PRODUCTS_SHARE))]

    def next(self) -> Request:
        """The next request of the mix."""
        spec = self._rng.choices(self.mix, weights=self._weights)[0]
        return self.draw(spec, self._rng)

    def draw(self, spec: RequestSpec, rng: random.Random) -> Request:
        """A concrete request of kind `spec`, with its values drawn from `rng`."""
        if spec.route == "/products":
            sort = rng.choice(("newest", "price_asc", "price_desc"))
            query = f"sort={sort}&page={rng.randint(1, 50)}&page_size=20"
            if rng.random() < 0.7:  # noqa: PLR2004 - most listings are within a category
                query += f"&category_id={rng.randint(1, self.plan.categories)}"
            return Request(spec, f"/products?{query}")
        if spec.route == "/products/{product_id}":
            product_id = rng.choices(self._popular, cum_weights=self._popular_cum)[0]
            return Request(spec, f"/products/{product_id}")
        if spec.route == "/categories/{category_id}/top":
            return Request(spec, f"/categories/{rng.randint(1, self.plan.categories)}/top")
        if spec.route == "/search":
            return Request(spec, f"/search?q={rng.choice(words.NOUNS)}")
        if spec.route == "/orders":
            items = [{"product_id": p, "quantity": 1} for p in rng.sample(self._hot, rng.randint(1, 3))]
            body = orjson.dumps({"user_id": self._ordinary_user(rng), "items": items})
            return Request(spec, "/orders", body)
        if spec.route == "/orders/export":
            return Request(spec, f"/orders/export?user_id={self._ordinary_user(rng)}")
        msg = f"The shop workload has no request generator for route {spec.route!r}."
        raise ValueError(msg)

    def _ordinary_user(self, rng: random.Random) -> int:
        return rng.randint(self.plan.power_users + 1, self.plan.users)
