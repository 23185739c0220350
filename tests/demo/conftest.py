"""Fixtures for the shop: a small seeded database on SQLite and on PostgreSQL, and in-process clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from overdrive.demo.app import create_app
from overdrive.demo.database import create_engine
from overdrive.demo.generator import SeedPlan
from overdrive.demo.mailer import SlowMailer
from overdrive.demo.seed import ensure_seeded, reset_writes
from overdrive.demo.settings import ProfileName, ShopSettings

TEST_PLAN = SeedPlan(scale=0.01)
FIXED_NOW = datetime(2026, 6, 1, 12, 0, 0)


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def shop_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shop database URL, once for SQLite and once for a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.sqlite3'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


async def _seed(settings: ShopSettings) -> None:
    engine = create_engine(settings)
    try:
        await ensure_seeded(engine, settings.plan)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def seeded(shop_url: str, tmp_path_factory: pytest.TempPathFactory) -> ShopSettings:
    """Settings of a shop database seeded with the small test plan."""
    settings = ShopSettings(
        database_url=shop_url, data_dir=tmp_path_factory.mktemp("data"), plan=TEST_PLAN, confirmation_delay=0.0
    )
    asyncio.run(_seed(settings))
    return settings


class Shop:
    """An app in one profile with an in-process client; `mailer` records confirmations."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, mailer: SlowMailer, settings: ShopSettings):
        self.app = app
        self.client = client
        self.mailer = mailer
        self.settings = settings


@asynccontextmanager
async def open_shop(settings: ShopSettings, profile: ProfileName = "naive") -> AsyncIterator[Shop]:
    """Start the app (lifespan included) and yield it with a client; undo its orders afterwards."""
    settings = replace(settings, profile=profile)
    mailer = SlowMailer(delay=0.0)
    app = create_app(settings, mailer=mailer, clock=lambda: FIXED_NOW)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://shop") as client,
        ):
            yield Shop(app, client, mailer, settings)
    finally:
        engine = create_engine(settings)
        try:
            await reset_writes(engine)
        finally:
            await engine.dispose()


@pytest.fixture
async def shop(seeded: ShopSettings) -> AsyncIterator[Shop]:
    """The naive shop on the seeded database."""
    async with open_shop(seeded) as opened:
        yield opened
