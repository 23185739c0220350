"""EXPLAIN analysis on real SQLite and PostgreSQL: plans, costs, warnings, and no side effects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine

from overdrive.db import ExplainOptions, QuerySample, explain
from overdrive.exceptions import ExplainError
from tests.db.conftest import placeholder


def kinds(engine: Engine, statement: str, parameters: Any = None, **options: Any) -> list[str]:
    with engine.connect() as connection:
        plan = explain(connection, QuerySample(statement, parameters), ExplainOptions(**options))
    return [warning.kind for warning in plan.warnings]


class TestWarnings:
    def test_a_filter_on_an_unindexed_column_is_a_sequential_scan(self, products_engine: Engine) -> None:
        p = placeholder(products_engine)
        with products_engine.connect() as connection:
            plan = explain(connection, QuerySample(f"SELECT id FROM products WHERE price_cents = {p}", (5,)))
        [warning] = plan.warnings
        assert (warning.kind, warning.table) == ("seq_scan", "products")
        assert "Sequential scan of products" in warning.message

    def test_a_scan_of_a_table_under_the_row_limit_is_fine(self, products_engine: Engine) -> None:
        statement = f"SELECT id FROM products WHERE price_cents = {placeholder(products_engine)}"
        assert kinds(products_engine, statement, (5,), seq_scan_rows=100_000) == []

    def test_an_order_no_index_provides_is_a_sort(self, products_engine: Engine) -> None:
        statement = f"SELECT id FROM products WHERE category_id = {placeholder(products_engine)} ORDER BY price_cents"
        assert "sort" in kinds(products_engine, statement, (3,))

    def test_a_primary_key_lookup_has_no_warning(self, products_engine: Engine) -> None:
        statement = f"SELECT name FROM products WHERE id = {placeholder(products_engine)}"
        assert kinds(products_engine, statement, (42,)) == []

    def test_an_offset_deeper_than_the_limit_is_flagged(self, products_engine: Engine) -> None:
        statement = f"SELECT id FROM products ORDER BY id LIMIT 10 OFFSET {placeholder(products_engine)}"
        assert "deep_offset" in kinds(products_engine, statement, (5000,))
        assert "deep_offset" not in kinds(products_engine, statement, (500,))
        assert "deep_offset" not in kinds(products_engine, statement, (5000,), max_offset=10_000)


class TestCost:
    def test_an_index_lowers_the_cost(self, products_engine: Engine) -> None:
        sample = QuerySample(f"SELECT id FROM products WHERE price_cents = {placeholder(products_engine)}", (5,))
        with products_engine.connect() as connection:
            before = explain(connection, sample).cost
        with products_engine.begin() as connection:
            connection.exec_driver_sql("CREATE INDEX ix_test_price ON products (price_cents)")
        try:
            with products_engine.connect() as connection:
                after = explain(connection, sample).cost
        finally:
            with products_engine.begin() as connection:
                connection.exec_driver_sql("DROP INDEX ix_test_price")
        assert before is not None
        assert after is not None
        assert after < before / 10

    def test_sqlite_counts_the_same_vm_steps_every_time(self, products_sqlite: Path) -> None:
        engine = create_engine_for(products_sqlite)
        sample = QuerySample("SELECT id FROM products WHERE category_id = ? ORDER BY created_at", (7,))
        with engine.connect() as connection:
            costs = {explain(connection, sample).cost for _ in range(3)}
            plan = explain(connection, sample)
        engine.dispose()
        assert len(costs) == 1
        assert plan.cost_unit == "VM steps"
        assert plan.cost is not None
        assert plan.cost > 50_000  # a scan of 50k rows takes at least one step per row
        assert any("SCAN products" in detail for _, _, detail in plan.raw)


class TestNoSideEffects:
    @pytest.mark.parametrize("analyze", [False, True])
    def test_explaining_a_write_leaves_the_data_unchanged(self, products_engine: Engine, analyze: bool) -> None:
        p = placeholder(products_engine)
        writes = [
            QuerySample(f"UPDATE products SET price_cents = 0 WHERE category_id = {p}", (4,)),
            QuerySample(f"DELETE FROM products WHERE category_id = {p}", (4,)),
        ]
        with products_engine.connect() as connection:
            for sample in writes:
                plan = explain(connection, sample, ExplainOptions(analyze=analyze))
                assert plan.cost
            connection.commit()
        with products_engine.connect() as connection:
            total = connection.exec_driver_sql("SELECT count(*), min(price_cents) FROM products WHERE category_id = 4")
            count, cheapest = total.one()
        assert count == 1000
        assert cheapest > 0

    def test_it_runs_inside_an_after_cursor_execute_handler(self, products_engine: Engine) -> None:
        plans: list[Any] = []

        def on_execute(connection: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            # SQLite's explain runs the statement again to count its steps: that must not explain itself.
            if statement.startswith("SELECT name FROM products") and not connection.info.get("explaining"):
                connection.info["explaining"] = True
                try:
                    plans.append(explain(connection, QuerySample(statement, parameters)))
                finally:
                    connection.info["explaining"] = False

        event.listen(products_engine, "after_cursor_execute", on_execute)
        try:
            with products_engine.connect() as connection:
                stmt = f"SELECT name FROM products WHERE category_id = {placeholder(products_engine)} ORDER BY id"
                names = connection.exec_driver_sql(stmt, (9,)).scalars().all()
        finally:
            event.remove(products_engine, "after_cursor_execute", on_execute)
        assert len(names) == 1000
        assert names[0] == "product 8"
        [plan] = plans
        assert "seq_scan" in [w.kind for w in plan.warnings]

    def test_a_statement_the_database_rejects_is_an_explain_error(self, products_engine: Engine) -> None:
        with products_engine.connect() as connection, pytest.raises(ExplainError, match="no_such_table"):
            explain(connection, QuerySample("SELECT * FROM no_such_table"))


class TestAsyncEngines:
    @pytest.mark.anyio
    async def test_aiosqlite_counts_the_same_steps_as_sqlite3(self, products_sqlite: Path) -> None:
        sample = QuerySample("SELECT id FROM products WHERE category_id = ? ORDER BY created_at", (7,))
        engine = create_engine_for(products_sqlite)
        with engine.connect() as connection:
            expected = explain(connection, sample).cost
        engine.dispose()
        async_engine = create_async_engine(f"sqlite+aiosqlite:///{products_sqlite}")
        try:
            async with async_engine.connect() as connection:
                plan = await connection.run_sync(explain, sample)
        finally:
            await async_engine.dispose()
        assert plan.cost == expected

    @pytest.mark.anyio
    @pytest.mark.integration
    async def test_asyncpg_explains_numbered_placeholders(self, products_postgres: str) -> None:
        url = products_postgres.replace("+psycopg", "+asyncpg", 1)
        async_engine = create_async_engine(url)
        try:
            async with async_engine.connect() as connection:
                sample = QuerySample("SELECT id FROM products WHERE price_cents = $1 LIMIT 10 OFFSET $2", (5, 2000))
                plan = await connection.run_sync(explain, sample)
        finally:
            await async_engine.dispose()
        assert [w.kind for w in plan.warnings] == ["seq_scan", "deep_offset"]


def create_engine_for(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}")


class TestSQLiteOnly:
    def test_measuring_can_be_turned_off(self, products_sqlite: Path) -> None:
        engine = create_engine_for(products_sqlite)
        with engine.connect() as connection:
            plan = explain(connection, QuerySample("SELECT id FROM products"), ExplainOptions(measure=False))
        engine.dispose()
        assert plan.cost is None
        assert plan.raw


@pytest.mark.integration
class TestPostgreSQLOnly:
    @pytest.fixture
    def engine(self, products_postgres: str) -> Iterator[Engine]:
        engine = create_engine(products_postgres)
        yield engine
        engine.dispose()

    def test_cost_is_the_planner_total_cost(self, engine: Engine) -> None:
        with engine.connect() as connection:
            plan = explain(connection, QuerySample("SELECT id FROM products WHERE category_id = %s", (7,)))
        assert plan.cost == plan.raw[0]["Plan"]["Total Cost"]
        assert plan.cost_unit == "planner cost"
        assert "Actual Total Time" not in plan.raw[0]["Plan"]

    def test_analyze_runs_the_select_in_a_rolled_back_savepoint(self, engine: Engine) -> None:
        with engine.connect() as connection:
            plan = explain(connection, QuerySample("SELECT id FROM products LIMIT 5"), ExplainOptions(analyze=True))
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1  # the transaction is still usable
        assert plan.raw[0]["Plan"]["Actual Rows"] == 5
