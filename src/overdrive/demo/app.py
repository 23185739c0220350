"""The reference shop API: FastAPI + SQLAlchemy 2 (async), in the `naive` or `tuned` profile.

Both profiles serve byte-identical responses; `tuned` gains one fix per landed step (see ../BENCHMARKS.md), and
until a step lands it runs exactly the naive code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from overdrive.demo import queries
from overdrive.demo.database import create_engine, writer
from overdrive.demo.mailer import ConfirmationSender, SlowMailer
from overdrive.demo.models import SeedInfo
from overdrive.demo.schemas import OrderIn, OrderOut, ProductDetail, ProductPage, ProductSummary
from overdrive.demo.settings import ShopSettings
from overdrive.demo.stats import RouteStats, RouteStatsMiddleware, count_queries
from overdrive.exceptions import SeedError

__all__ = ["create_app", "create_app_from_env"]

Clock = Callable[[], datetime]
MAX_PAGE = 10_000
MAX_PAGE_SIZE = 100


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True, kw_only=True)
class _Shop:
    """Everything a request handler needs, built once per app."""

    settings: ShopSettings
    sessions: async_sessionmaker[AsyncSession]
    writer_sessions: async_sessionmaker[AsyncSession]
    mailer: ConfirmationSender
    clock: Clock
    stats: RouteStats


def _shop(request: Request) -> _Shop:
    shop: _Shop = request.app.state.shop
    return shop


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with _shop(request).sessions() as session:
        yield session


ShopDep = Annotated[_Shop, Depends(_shop)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
PageDep = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number.")]
PageSizeDep = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
PriceDep = Annotated[Decimal | None, Query(ge=0, max_digits=12, decimal_places=2)]


def _cents(price: Decimal | None) -> int | None:
    return None if price is None else int(price * 100)


def _not_found(what: str, ident: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {ident} does not exist.")


def create_app(
    settings: ShopSettings | None = None,
    *,
    engine: AsyncEngine | None = None,
    mailer: ConfirmationSender | None = None,
    clock: Clock = _utc_now,
) -> FastAPI:
    """Build the shop app.

    Args:
        settings: profile, database and seed; read from the environment when omitted.
        engine: an engine to use instead of creating one from the settings (the caller then disposes it).
        mailer: the order confirmation sender; by default a mailer as slow as `settings.confirmation_delay`.
        clock: returns the current UTC time, naive; injectable so tests get stable order timestamps.

    Returns:
        The FastAPI application. Its start-up fails with `SeedError` if the database was never seeded.

    """
    settings = settings or ShopSettings.from_env()
    owns_engine = engine is None
    engine = engine or create_engine(settings)
    stats = RouteStats()
    count_queries(engine)
    shop = _Shop(
        settings=settings,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        writer_sessions=async_sessionmaker(writer(engine), expire_on_commit=False),
        mailer=mailer or SlowMailer(delay=settings.confirmation_delay),
        clock=clock,
        stats=stats,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            async with shop.sessions() as session:
                seeded = await session.scalar(select(SeedInfo.id))
        except SQLAlchemyError as exc:
            msg = f"The shop database is not reachable or not seeded ({exc}); run `overdrive demo seed` first."
            raise SeedError(msg) from exc
        if seeded is None:
            msg = "The shop database has not been seeded; run `overdrive demo seed` first."
            raise SeedError(msg)
        yield
        if owns_engine:
            await engine.dispose()

    app = FastAPI(title="Overdrive shop", version="1", lifespan=lifespan)
    app.state.shop = shop
    app.add_middleware(RouteStatsMiddleware, stats=stats)
    _add_routes(app)
    return app


def create_app_from_env() -> FastAPI:
    """App factory for servers (`uvicorn --factory`, `granian --factory`): settings from the environment."""
    return create_app(ShopSettings.from_env())


def _add_routes(app: FastAPI) -> None:
    @app.exception_handler(queries.OrderRejected)
    async def _rejected(_request: Request, exc: queries.OrderRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/healthz")
    async def healthz(session: SessionDep) -> JSONResponse:
        try:
            await session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/products")
    async def list_products(
        session: SessionDep,
        page: PageDep = 1,
        page_size: PageSizeDep = 20,
        category_id: Annotated[int | None, Query(gt=0)] = None,
        min_price: PriceDep = None,
        max_price: PriceDep = None,
        sort: queries.Sort = "newest",
    ) -> ProductPage:
        if min_price is not None and max_price is not None and min_price > max_price:
            raise HTTPException(422, detail=f"min_price ({min_price}) must not exceed max_price ({max_price}).")
        return await queries.list_products(
            session,
            category_id=category_id,
            min_price_cents=_cents(min_price),
            max_price_cents=_cents(max_price),
            sort=sort,
            page=page,
            page_size=page_size,
        )

    @app.get("/products/{product_id}")
    async def get_product(session: SessionDep, product_id: Annotated[int, Path(gt=0)]) -> ProductDetail:
        detail = await queries.product_detail(session, product_id)
        if detail is None:
            msg = "Product"
            raise _not_found(msg, product_id)
        return detail

    @app.get("/categories/{category_id}/top")
    async def category_top(
        session: SessionDep,
        category_id: Annotated[int, Path(gt=0)],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[ProductSummary]:
        top = await queries.category_top(session, category_id, limit)
        if top is None:
            msg = "Category"
            raise _not_found(msg, category_id)
        return top

    @app.get("/search")
    async def search(
        session: SessionDep,
        q: Annotated[str, Query(min_length=2, max_length=64, description="Text to look for.")],
        page: PageDep = 1,
        page_size: PageSizeDep = 20,
    ) -> ProductPage:
        if not q.strip():
            raise HTTPException(422, detail="q must contain something other than spaces.")
        return await queries.search_products(session, q=q.strip(), page=page, page_size=page_size)

    @app.post("/orders", status_code=201)
    async def create_order(shop: ShopDep, order_in: OrderIn) -> OrderOut:
        async with shop.writer_sessions() as session, session.begin():
            order = await queries.place_order(session, order_in, shop.clock())
        await shop.mailer.send(order)  # inside the request: the slow step the jobs step moves out
        return order

    @app.get("/orders/export")
    async def export_orders(session: SessionDep, user_id: Annotated[int, Query(gt=0)]) -> Response:
        body = await queries.export_orders(session, user_id)
        if body is None:
            msg = "User"
            raise _not_found(msg, user_id)
        headers = {"Content-Disposition": f'attachment; filename="orders-{user_id}.csv"'}
        return Response(body, media_type="text/csv", headers=headers)

    @app.get("/_demo/stats", include_in_schema=False)
    async def route_stats(shop: ShopDep) -> dict[str, dict[str, int]]:
        return shop.stats.snapshot()

    @app.delete("/_demo/stats", include_in_schema=False, status_code=204)
    async def reset_route_stats(shop: ShopDep) -> None:
        shop.stats.reset()
