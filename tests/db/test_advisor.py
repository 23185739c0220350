"""The index advisor on real SQLite and PostgreSQL (HypoPG): what it proposes, what it skips, what it leaves."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from overdrive.db import IndexColumn, QuerySample, advise
from overdrive.db import _sqlite as sqlite_backend
from overdrive.exceptions import ConfigurationError, ExplainError
from tests.db.conftest import placeholder

NEWEST_IN_CATEGORY = "SELECT id, name FROM products WHERE category_id = {p} ORDER BY created_at DESC, id DESC LIMIT 20"
NEWEST_ARCHIVED = "SELECT id, name FROM products WHERE status = 'archived' ORDER BY created_at DESC LIMIT 20"


def newest(engine: Engine, category: int = 7) -> QuerySample:
    return QuerySample(NEWEST_IN_CATEGORY.format(p=placeholder(engine)), (category,))


def indexes(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            rows = connection.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'products'")
        return set(rows.scalars())


class TestProposals:
    def test_filter_then_order_gets_a_composite_index_in_order_and_direction(self, products_engine: Engine) -> None:
        with products_engine.connect() as connection:
            [advice] = advise(connection, [newest(products_engine)])
        assert advice.index.table == "products"
        assert advice.index.columns == (
            IndexColumn("category_id"),
            IndexColumn("created_at", descending=True),
            IndexColumn("id", descending=True),
        )
        assert advice.index.where is None
        assert advice.cost_after <= advice.cost_before / 2
        [gain] = advice.queries
        assert gain.position == 0
        assert gain.improvement >= 0.5
        create = "CREATE INDEX CONCURRENTLY" if products_engine.dialect.name == "postgresql" else "CREATE INDEX"
        assert advice.statement == (
            f"{create} ix_products_category_id_created_at_desc_id_desc "
            "ON products (category_id, created_at DESC, id DESC);"
        )

    def test_a_literal_constant_filter_gets_a_partial_index(self, products_engine: Engine) -> None:
        with products_engine.connect() as connection:
            [advice] = advise(connection, [QuerySample(NEWEST_ARCHIVED)])
        assert advice.index.where == "status = 'archived'"
        assert advice.index.columns == (IndexColumn("created_at", descending=True),)
        assert advice.index.name == "ix_products_created_at_desc_where_status"
        assert advice.statement.endswith("ON products (created_at DESC) WHERE status = 'archived';")

    def test_partial_indexes_can_be_turned_off(self, products_engine: Engine) -> None:
        with products_engine.connect() as connection:
            [advice] = advise(connection, [QuerySample(NEWEST_ARCHIVED)], partial_indexes=False)
        assert advice.index.where is None
        assert advice.index.columns[0] == IndexColumn("status")

    def test_one_index_helping_several_statements_is_one_advice(self, products_engine: Engine) -> None:
        samples = [newest(products_engine, 3), QuerySample("SELECT 1"), newest(products_engine, 11)]
        with products_engine.connect() as connection:
            [advice] = advise(connection, samples)
        assert [gain.position for gain in advice.queries] == [0, 2]
        assert advice.cost_before == sum(gain.cost_before for gain in advice.queries)

    def test_the_runners_up_are_listed_as_alternatives(self, products_engine: Engine) -> None:
        p = placeholder(products_engine)
        statement = f"SELECT id FROM products WHERE category_id = {p} AND price_cents < {p} ORDER BY created_at"
        with products_engine.connect() as connection:
            [advice] = advise(connection, [QuerySample(statement, (5, 2000))], min_improvement=0.3)
        assert advice.alternatives
        assert advice.index not in advice.alternatives
        assert all(alternative.columns[0].name == "category_id" for alternative in advice.alternatives)

    def test_nothing_is_proposed_below_the_minimum_improvement(self, products_engine: Engine) -> None:
        p = placeholder(products_engine)
        # Half the table matches: an index cannot halve the cost of reading it.
        statement = f"SELECT id FROM products WHERE price_cents >= {p}"
        with products_engine.connect() as connection:
            assert advise(connection, [QuerySample(statement, (50_000,))], min_improvement=0.9) == []

    @pytest.mark.parametrize("share", [0, 1.5])
    def test_the_minimum_improvement_is_a_share(self, products_engine: Engine, share: float) -> None:
        with products_engine.connect() as connection, pytest.raises(ConfigurationError, match="min_improvement"):
            advise(connection, [newest(products_engine)], min_improvement=share)

    def test_statements_other_than_select_update_delete_are_skipped(self, products_engine: Engine) -> None:
        insert = "INSERT INTO products VALUES (0, 1, 'active', 1, 1, 'x')"
        with products_engine.connect() as connection:
            assert advise(connection, [QuerySample(insert), QuerySample("CREATE TABLE x (a int)")]) == []

    def test_an_update_is_advised_like_a_select(self, products_engine: Engine) -> None:
        statement = f"UPDATE products SET name = 'x' WHERE price_cents = {placeholder(products_engine)}"
        with products_engine.connect() as connection:
            [advice] = advise(connection, [QuerySample(statement, (1234,))])
            untouched = connection.exec_driver_sql("SELECT count(*) FROM products WHERE name = 'x'").scalar()
        assert advice.index.columns == (IndexColumn("price_cents"),)
        assert untouched == 0


class TestExistingIndexes:
    def test_no_advice_when_an_existing_index_serves_the_statement(self, products_engine: Engine) -> None:
        # Ascending columns serve ORDER BY created_at DESC, id DESC read backwards after the equality.
        with products_engine.begin() as connection:
            connection.exec_driver_sql("CREATE INDEX ix_test_cat_created ON products (category_id, created_at, id)")
        try:
            with products_engine.connect() as connection:
                assert advise(connection, [newest(products_engine)]) == []
        finally:
            with products_engine.begin() as connection:
                connection.exec_driver_sql("DROP INDEX ix_test_cat_created")

    def test_a_full_index_with_the_constant_column_first_serves_the_partial_one(self, products_engine: Engine) -> None:
        with products_engine.begin() as connection:
            connection.exec_driver_sql("CREATE INDEX ix_test_status_created ON products (status, created_at)")
        try:
            with products_engine.connect() as connection:
                assert advise(connection, [QuerySample(NEWEST_ARCHIVED)]) == []
        finally:
            with products_engine.begin() as connection:
                connection.exec_driver_sql("DROP INDEX ix_test_status_created")


class TestNothingLeftBehind:
    def test_no_index_remains_after_advising(self, products_engine: Engine) -> None:
        before = indexes(products_engine)
        with products_engine.connect() as connection:
            assert advise(connection, [newest(products_engine), QuerySample(NEWEST_ARCHIVED)])
            if products_engine.dialect.name == "postgresql":
                assert connection.exec_driver_sql("SELECT count(*) FROM hypopg()").scalar() == 0
            connection.commit()
        assert indexes(products_engine) == before

    def test_a_failing_trial_still_rolls_its_index_back(
        self, products_sqlite: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = create_engine(f"sqlite:///{products_sqlite}")
        measure = sqlite_backend.cost
        calls = 0

        def fail_after_the_baseline(connection: Any, sample: QuerySample) -> float:
            nonlocal calls
            calls += 1
            if calls > 1:
                msg = "the database went away"
                raise ExplainError(msg)
            return measure(connection, sample)

        monkeypatch.setattr(sqlite_backend, "cost", fail_after_the_baseline)
        try:
            with engine.connect() as connection:
                with pytest.raises(ExplainError, match="went away"):
                    advise(connection, [newest(engine)])
                connection.commit()
            assert indexes(engine) == set()
        finally:
            engine.dispose()
