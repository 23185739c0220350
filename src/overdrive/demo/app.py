"""The reference shop API: FastAPI + SQLAlchemy 2 (async), in one of the cumulative profiles.

Every profile serves the same response bodies (the database step's listings add a `next_cursor` field); each
step adds its fix to the one before (`steps.py`), and `tuned` runs every landed step. See ../BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from overdrive.cache import Cache, CacheTimingMiddleware, HTTPCacheMiddleware, RedisTier
from overdrive.db import QueryMonitor, QueryScopeMiddleware
from overdrive.demo import queries
from overdrive.demo.caching_step import PUBLIC_CACHE_CONTROL, create_cache
from overdrive.demo.database import create_engine, writer
from overdrive.demo.indexes import sync_indexes
from overdrive.demo.mailer import ConfirmationSender, SlowMailer
from overdrive.demo.models import SeedInfo
from overdrive.demo.schemas import KeysetPage, OrderIn, OrderOut, ProductDetail, ProductPage, ProductSummary
from overdrive.demo.settings import ShopSettings
from overdrive.demo.stats import RouteStats, RouteStatsMiddleware, count_queries
from overdrive.demo.steps import ShopQueries, build_queries
from overdrive.exceptions import InvalidCursor, SeedError
from overdrive.observability import RequestMetrics, StructuredLogs, configure_logging, instrument_app

__all__ = ["create_app", "create_app_from_env"]

Clock = Callable[[], datetime]
T = TypeVar("T")
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
    queries: ShopQueries
    public_cache_control: str | None
    """The Cache-Control of public GETs whose bodies no order changes; None leaves HTTP caching off."""


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
CursorDep = Annotated[
    str | None, Query(max_length=512, description="The previous page's next_cursor (database step onwards).")
]


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
        The FastAPI application. Its start-up fails with `SeedError` if the database was never seeded; it then
        creates the database step's indexes, or drops them in the naive profile (`indexes.py`), and empties the
        caching step's cache, since the database may have been reset since the last run.

    """
    settings = settings or ShopSettings.from_env()
    owns_engine = engine is None
    engine = engine or create_engine(settings)
    stats = RouteStats()
    count_queries(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    caching = "caching" in settings.steps
    observing = "observability" in settings.steps
    cache = create_cache(settings) if caching else None
    observability = _Observability.start(settings, engine) if observing else None
    shop = _Shop(
        settings=settings,
        sessions=sessions,
        writer_sessions=async_sessionmaker(writer(engine), expire_on_commit=False),
        mailer=mailer or SlowMailer(delay=settings.confirmation_delay),
        clock=clock,
        stats=stats,
        queries=build_queries(settings, sessions, cache=cache, max_page_size=MAX_PAGE_SIZE),
        public_cache_control=PUBLIC_CACHE_CONTROL if caching else None,
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
        await sync_indexes(engine, wanted="database" in settings.steps)
        if cache is not None:
            await cache.clear()
        try:
            yield
        finally:
            if cache is not None:
                await _close_cache(cache)
            if observability is not None:
                await observability.close()
            if owns_engine:
                await engine.dispose()

    app = FastAPI(title="Overdrive shop", version="1", lifespan=lifespan)
    app.state.shop = shop
    if cache is not None:
        app.add_middleware(HTTPCacheMiddleware, cache=cache)
    if observability is not None:
        observability.mount(app, cache)
    app.add_middleware(RouteStatsMiddleware, stats=stats, router=app.router)  # outermost: counts cache hits too
    _add_routes(app, page_model=KeysetPage if "database" in settings.steps else ProductPage)
    return app


@dataclass
class _Observability:
    """The observability step: a query monitor and JSON logs, mounted as middleware, closed at shutdown."""

    monitor: QueryMonitor
    logs: StructuredLogs

    @classmethod
    def start(cls, settings: ShopSettings, engine: AsyncEngine) -> _Observability:
        monitor = QueryMonitor(n_plus_one="log", explain_slower_than=0.25)
        monitor.instrument(engine)
        (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        return cls(monitor=monitor, logs=configure_logging(settings.data_dir / "logs" / "shop.jsonl"))

    def mount(self, app: FastAPI, cache: Cache | None) -> None:
        """Add the step's middleware: query scopes inside, then metrics, request ids and the access log.

        Query scopes put db time in Server-Timing, N+1 warnings in the logs and the slow-query report at
        /_overdrive/db (loopback clients only); `instrument_app` adds /metrics, X-Request-ID, Server-Timing and a
        JSON access line per request, written off the event loop to data_dir/logs.
        """
        app.add_middleware(QueryScopeMiddleware, monitor=self.monitor, report_path="/_overdrive/db")
        if cache is not None:
            app.add_middleware(CacheTimingMiddleware, cache=cache)  # cache time and L2 reads/loads, too
        instrument_app(app, metrics=RequestMetrics(), logs=self.logs)

    async def close(self) -> None:
        self.monitor.uninstrument()
        await asyncio.to_thread(self.logs.close)


async def _close_cache(cache: Cache) -> None:
    await cache.aclose()
    if isinstance(cache.l2, RedisTier):
        await cache.l2.aclose()


def create_app_from_env() -> FastAPI:
    """App factory for servers (`uvicorn --factory`, `granian --factory`): settings from the environment."""
    return create_app(ShopSettings.from_env())


def _public(response: Response, shop: _Shop) -> None:
    if shop.public_cache_control is not None:
        response.headers["Cache-Control"] = shop.public_cache_control


def _add_routes(app: FastAPI, *, page_model: type[ProductPage]) -> None:
    @app.exception_handler(queries.OrderRejected)
    async def _rejected(_request: Request, exc: queries.OrderRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(InvalidCursor)
    async def _bad_cursor(_request: Request, exc: InvalidCursor) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/healthz")
    async def healthz(session: SessionDep) -> JSONResponse:
        try:
            await session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/products", response_model=page_model)
    async def list_products(
        shop: ShopDep,
        session: SessionDep,
        response: Response,
        page: PageDep = 1,
        page_size: PageSizeDep = 20,
        category_id: Annotated[int | None, Query(gt=0)] = None,
        min_price: PriceDep = None,
        max_price: PriceDep = None,
        sort: queries.Sort = "newest",
        cursor: CursorDep = None,
    ) -> ProductPage:
        if min_price is not None and max_price is not None and min_price > max_price:
            raise HTTPException(422, detail=f"min_price ({min_price}) must not exceed max_price ({max_price}).")
        _public(response, shop)
        return await shop.queries.list_products(
            session,
            category_id=category_id,
            min_price_cents=_cents(min_price),
            max_price_cents=_cents(max_price),
            sort=sort,
            page=page,
            page_size=page_size,
            cursor=cursor,
        )

    @app.get("/products/{product_id}", response_model=ProductDetail)
    async def get_product(
        shop: ShopDep, session: SessionDep, product_id: Annotated[int, Path(gt=0)]
    ) -> ProductDetail | Response:
        detail = await shop.queries.product_detail(session, product_id)
        if detail is None:
            msg = "Product"
            raise _not_found(msg, product_id)
        return _json(detail)

    @app.get("/categories/{category_id}/top", response_model=list[ProductSummary])
    async def category_top(
        shop: ShopDep,
        session: SessionDep,
        response: Response,
        category_id: Annotated[int, Path(gt=0)],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[ProductSummary] | Response:
        top = await shop.queries.category_top(session, category_id, limit)
        if top is None:
            msg = "Category"
            raise _not_found(msg, category_id)
        result = _json(top)
        _public(result if isinstance(result, Response) else response, shop)
        return result

    @app.get("/search", response_model=page_model)
    async def search(
        shop: ShopDep,
        session: SessionDep,
        response: Response,
        q: Annotated[str, Query(min_length=2, max_length=64, description="Text to look for.")],
        page: PageDep = 1,
        page_size: PageSizeDep = 20,
        cursor: CursorDep = None,
    ) -> ProductPage:
        if not q.strip():
            raise HTTPException(422, detail="q must contain something other than spaces.")
        _public(response, shop)
        return await shop.queries.search_products(session, q=q.strip(), page=page, page_size=page_size, cursor=cursor)

    @app.post("/orders", status_code=201)
    async def create_order(shop: ShopDep, order_in: OrderIn) -> OrderOut:
        async with shop.writer_sessions() as session, session.begin():
            order = await shop.queries.place_order(session, order_in, shop.clock())
        await shop.queries.order_committed(order)
        await shop.mailer.send(order)  # inside the request: the slow step the jobs step moves out
        return order

    @app.get("/orders/export")
    async def export_orders(shop: ShopDep, session: SessionDep, user_id: Annotated[int, Query(gt=0)]) -> Response:
        body = await shop.queries.export_orders(session, user_id)
        if body is None:
            msg = "User"
            raise _not_found(msg, user_id)
        headers = {"Content-Disposition": f'attachment; filename="orders-{user_id}.csv"'}
        if isinstance(body, str):
            return Response(body, media_type="text/csv", headers=headers)
        return StreamingResponse(body, media_type="text/csv", headers=headers)

    @app.get("/_demo/stats", include_in_schema=False)
    async def route_stats(shop: ShopDep) -> dict[str, dict[str, int]]:
        return shop.stats.snapshot()

    @app.delete("/_demo/stats", include_in_schema=False, status_code=204)
    async def reset_route_stats(shop: ShopDep) -> None:
        shop.stats.reset()


def _json(result: T | bytes) -> T | Response:
    """A finished JSON body (from the cache) as a response; anything else for FastAPI to serialise."""
    if isinstance(result, bytes):
        return Response(result, media_type="application/json")
    return result
