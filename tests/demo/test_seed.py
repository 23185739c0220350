"""Seeding fills SQLite and PostgreSQL with the same data, once, and never touches foreign databases."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from overdrive.demo.database import create_engine
from overdrive.demo.generator import SeedPlan
from overdrive.demo.models import Base
from overdrive.demo.seed import ensure_seeded, reset_writes
from overdrive.demo.settings import ShopSettings
from overdrive.exceptions import SeedError
from tests import services
from tests.demo.conftest import TEST_PLAN

pytestmark = pytest.mark.anyio

TABLES = ("categories", "sellers", "users", "products", "reviews", "orders", "order_items")


async def _content_digests(settings: ShopSettings) -> dict[str, str]:
    """A digest of every shop table's rows, read back from the database in id order."""
    engine = create_engine(settings)
    digests = {}
    try:
        async with engine.connect() as conn:
            for table in TABLES:
                typed = Base.metadata.tables[table]  # typed columns: datetimes come back as datetimes on both
                rows = await conn.execute(select(typed).order_by(typed.c.id))
                digests[table] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    finally:
        await engine.dispose()
    return digests


class TestEnsureSeeded:
    async def test_a_second_run_finds_the_seed_and_does_nothing(self, seeded: ShopSettings) -> None:
        engine = create_engine(seeded)
        try:
            status = await ensure_seeded(engine, seeded.plan)
        finally:
            await engine.dispose()
        assert status.created is False
        assert status.max_order_id == TEST_PLAN.orders

    async def test_progress_is_reported_for_every_row(self, tmp_path: Path) -> None:
        plan = SeedPlan(scale=0.002)
        settings = ShopSettings(data_dir=tmp_path, plan=plan)
        seen: dict[str, int] = {}
        engine = create_engine(settings)
        try:
            status = await ensure_seeded(engine, plan, on_progress=lambda t, n: seen.update({t: seen.get(t, 0) + n}))
        finally:
            await engine.dispose()
        assert status.created is True
        assert seen["products"] == plan.products
        assert seen["reviews"] == plan.reviews

    async def test_another_plan_replaces_the_seed(self, tmp_path: Path) -> None:
        settings = ShopSettings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", plan=SeedPlan(scale=0.002))
        engine = create_engine(settings)
        try:
            first = await ensure_seeded(engine, settings.plan)
            second = await ensure_seeded(engine, SeedPlan(seed=7, scale=0.002))
            again = await ensure_seeded(engine, SeedPlan(seed=7, scale=0.002))
        finally:
            await engine.dispose()
        assert first.created
        assert second.created
        assert not again.created
        assert first.digest != second.digest == again.digest

    async def test_a_database_with_foreign_tables_is_left_alone(self, tmp_path: Path) -> None:
        settings = ShopSettings(database_url=f"sqlite:///{tmp_path / 'theirs.sqlite3'}", plan=SeedPlan(scale=0.002))
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
                await conn.execute(text("INSERT INTO invoices VALUES (1)"))
            with pytest.raises(SeedError, match=r"tables Overdrive did not seed \(invoices\)"):
                await ensure_seeded(engine, settings.plan)
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM invoices"))).scalar() == 1
        finally:
            await engine.dispose()

    async def test_reset_needs_a_seeded_database(self, tmp_path: Path) -> None:
        engine = create_engine(ShopSettings(data_dir=tmp_path, plan=SeedPlan(scale=0.002)))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            with pytest.raises(SeedError, match="not been seeded"):
                await reset_writes(engine)
        finally:
            await engine.dispose()


@pytest.mark.integration
async def test_sqlite_and_postgresql_hold_identical_data(postgres_url: str, tmp_path: Path) -> None:
    """Same schema and seed on both backends: every table reads back identically."""
    plan = SeedPlan(scale=0.003)
    name = f"overdrive_cmp_{uuid.uuid4().hex[:12]}"
    pg = ShopSettings(database_url=services.create_database(postgres_url, name), plan=plan)
    lite = ShopSettings(database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}", plan=plan)
    try:
        statuses = []
        for settings in (lite, pg):
            engine = create_engine(settings)
            try:
                statuses.append(await ensure_seeded(engine, plan))
            finally:
                await engine.dispose()
        assert statuses[0].digest == statuses[1].digest
        assert await _content_digests(lite) == await _content_digests(pg)
    finally:
        services.drop_database(postgres_url, name)
