"""Load the generated data set into SQLite or PostgreSQL once, and undo the demo's own writes between runs.

Seeding is one transaction: an interrupted run leaves an empty database, never a half-filled one. A `seed_info` row
records the plan and the data set's digest, so the next run with the same plan returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, inspect, select, text

from overdrive.demo.generator import SEED_VERSION, Batch, Digest, SeedPlan, generate
from overdrive.demo.models import Base, SeedInfo
from overdrive.exceptions import SeedError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["ProgressCallback", "SeedStatus", "ensure_seeded", "reset_writes"]

ProgressCallback = Callable[[str, int], None]
"""Called with a table name and the number of rows just written to it."""

_SERIAL_TABLES = ("categories", "sellers", "users", "products", "reviews", "orders", "order_items")


@dataclass(frozen=True, kw_only=True)
class SeedStatus:
    """What `ensure_seeded` found or did."""

    created: bool
    digest: str
    max_order_id: int
    seconds: float


async def ensure_seeded(
    engine: AsyncEngine, plan: SeedPlan, *, on_progress: ProgressCallback | None = None
) -> SeedStatus:
    """Seed the database with `plan` unless it already holds exactly that data set.

    A database seeded with another plan (or an older seed version) is dropped and seeded again; a database holding
    tables Overdrive did not seed is left alone and reported, never overwritten.

    Raises:
        SeedError: the database holds foreign tables, or loading failed (nothing is left behind).

    """
    started = time.perf_counter()
    async with engine.connect() as conn:
        existing = await _existing_seed(conn)
    if existing is not None and _matches(existing, plan):
        return SeedStatus(
            created=False,
            digest=existing.digest,
            max_order_id=existing.max_order_id,
            seconds=time.perf_counter() - started,
        )
    try:
        async with engine.begin() as conn:
            if existing is not None:
                await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
            digest = await _load(conn, plan, on_progress)
            max_order_id = (await conn.execute(select(func.max(Base.metadata.tables["orders"].c.id)))).scalar()
            await _sync_sequences(conn)
            await conn.execute(text("ANALYZE"))  # planner statistics, as any database in service has
            await conn.execute(
                Base.metadata.tables["seed_info"]
                .insert()
                .values(
                    id=1,
                    version=SEED_VERSION,
                    seed=plan.seed,
                    scale=plan.scale,
                    digest=digest,
                    max_order_id=max_order_id or 0,
                )
            )
    except SeedError:
        raise
    except Exception as exc:
        msg = f"Seeding the shop database failed and was rolled back: {exc}"
        raise SeedError(msg) from exc
    return SeedStatus(
        created=True, digest=digest, max_order_id=max_order_id or 0, seconds=time.perf_counter() - started
    )


def _matches(info: SeedInfo, plan: SeedPlan) -> bool:
    return info.version == SEED_VERSION and info.seed == plan.seed and info.scale == plan.scale


async def _existing_seed(conn: AsyncConnection) -> SeedInfo | None:
    tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    ours = set(Base.metadata.tables)
    if not tables:
        return None
    if "seed_info" not in tables or not tables <= ours:
        foreign = ", ".join(sorted(tables - ours)) or "shop tables without a seed record"
        msg = (
            f"The database already holds tables Overdrive did not seed ({foreign}); "
            "point DATABASE_URL at an empty database."
        )
        raise SeedError(msg)
    table = Base.metadata.tables["seed_info"]
    row = (await conn.execute(select(table).where(table.c.id == 1))).one_or_none()
    if row is None:
        return None
    return SeedInfo(**row._asdict())


async def _load(conn: AsyncConnection, plan: SeedPlan, on_progress: ProgressCallback | None) -> str:
    digest = Digest()
    postgres = conn.dialect.name == "postgresql"
    raw = (await conn.get_raw_connection()).driver_connection if postgres else None
    for batch in generate(plan):
        digest.update(batch)
        if raw is not None:
            await raw.copy_records_to_table(batch.table, records=batch.rows, columns=batch.columns)
        else:
            await conn.exec_driver_sql(_insert_sql(batch), batch.rows)
        if on_progress is not None:
            on_progress(batch.table, len(batch.rows))
    return digest.hexdigest()


def _insert_sql(batch: Batch) -> str:
    marks = ", ".join("?" * len(batch.columns))
    return f"INSERT INTO {batch.table} ({', '.join(batch.columns)}) VALUES ({marks})"  # noqa: S608 - fixed names


async def _sync_sequences(conn: AsyncConnection) -> None:
    """Move PostgreSQL's id sequences past the explicitly numbered seed rows (SQLite needs nothing)."""
    if conn.dialect.name != "postgresql":
        return
    for table in _SERIAL_TABLES:
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        )


async def reset_writes(engine: AsyncEngine) -> int:
    """Undo every order placed since seeding: delete them and put their quantities back in stock.

    Returns:
        The number of orders removed.

    Raises:
        SeedError: the database was never seeded.

    """
    async with engine.begin() as conn:
        info = await _existing_seed(conn)
        if info is None:
            msg = "The shop database has not been seeded yet; nothing to reset."
            raise SeedError(msg)
        params = {"last": info.max_order_id}
        await conn.execute(
            text(
                "UPDATE products SET stock = stock + (SELECT coalesce(sum(quantity), 0) FROM order_items "
                "WHERE order_items.product_id = products.id AND order_items.order_id > :last) "
                "WHERE id IN (SELECT product_id FROM order_items WHERE order_id > :last)"
            ),
            params,
        )
        await conn.execute(text("DELETE FROM order_items WHERE order_id > :last"), params)
        removed = (await conn.execute(text("DELETE FROM orders WHERE id > :last"), params)).rowcount
        await _sync_sequences(conn)
    return removed
