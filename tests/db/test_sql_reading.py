"""Reading SQL without a database: placeholders inlined in every paramstyle, candidate indexes, statement files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from overdrive.db import IndexCandidate, IndexColumn, QuerySample
from overdrive.db._candidates import candidates, statement_kind
from overdrive.db._placeholders import inline, render_literal
from overdrive.db._queries import load_queries, split_statements
from overdrive.exceptions import ConfigurationError

COLUMNS = {
    "products": frozenset({"id", "category_id", "seller_id", "price_cents", "created_at"}),
    "sellers": frozenset({"id", "name", "country"}),
}


def found(statement: str) -> list[str]:
    return [c.definition() for c in candidates(statement, "postgresql", lambda t: COLUMNS.get(t, frozenset()))]


class TestInline:
    @pytest.mark.parametrize(
        ("statement", "parameters"),
        [
            ("SELECT * FROM t WHERE a = ? AND b = ?", (1, "x")),
            ("SELECT * FROM t WHERE a = $1 AND b = $2", (1, "x")),
            ("SELECT * FROM t WHERE a = %s AND b = %s", (1, "x")),
            ("SELECT * FROM t WHERE a = %(a)s AND b = %(b)s", {"a": 1, "b": "x"}),
            ("SELECT * FROM t WHERE a = :a AND b = :b", {"a": 1, "b": "x"}),
        ],
    )
    def test_every_paramstyle_becomes_the_same_literal_sql(self, statement: str, parameters: object) -> None:
        assert inline(QuerySample(statement, parameters)) == "SELECT * FROM t WHERE a = 1 AND b = 'x'"  # type: ignore[arg-type]

    def test_placeholders_inside_literals_comments_and_casts_are_left_alone(self) -> None:
        statement = "SELECT '?', \"a?\" /* :x */ FROM t WHERE a::int = :a -- ?"
        assert inline(QuerySample(statement, {"a": 2})) == "SELECT '?', \"a?\" /* :x */ FROM t WHERE a::int = 2 -- ?"

    def test_doubled_percent_signs_become_single_in_format_styles(self) -> None:
        assert inline(QuerySample("SELECT 'a%%' WHERE b = %s", (1,))) == "SELECT 'a%' WHERE b = 1"

    def test_values_render_as_literals_both_databases_read(self) -> None:
        assert render_literal(None) == "NULL"
        assert render_literal(True) == "TRUE"
        assert render_literal(2.5) == "2.5"
        assert render_literal("it's") == "'it''s'"
        assert render_literal(datetime(2024, 5, 1, 12, 30)) == "'2024-05-01 12:30:00'"
        assert render_literal(b"\x01\xff") == "X'01ff'"

    def test_numbered_placeholders_take_a_logs_named_values(self) -> None:
        sample = QuerySample("SELECT * FROM t WHERE a = $1 AND b = $2", {"$1": "5", "$2": None})
        assert inline(sample) == "SELECT * FROM t WHERE a = '5' AND b = NULL"

    def test_numbered_placeholders_without_values_are_an_error(self) -> None:
        with pytest.raises(ValueError, match="no parameter values"):
            inline(QuerySample("SELECT * FROM t WHERE a = $1"))
        assert inline(QuerySample("SELECT '$1', a::int FROM t")) == "SELECT '$1', a::int FROM t"

    def test_a_missing_parameter_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="number 2"):
            inline(QuerySample("SELECT ? + ?", (1,)))
        with pytest.raises(ValueError, match="'b'"):
            inline(QuerySample("SELECT :a + :b", {"a": 1}))


class TestCandidates:
    def test_equality_first_then_the_order_then_the_range(self) -> None:
        assert found(
            "SELECT products.id FROM products WHERE products.category_id = $1 AND products.price_cents >= $2 "
            "ORDER BY products.created_at DESC, products.id DESC LIMIT $3"
        ) == [
            "CREATE INDEX ON products (category_id, created_at DESC, id DESC)",
            "CREATE INDEX ON products (category_id, price_cents)",
            "CREATE INDEX ON products (category_id)",
        ]

    def test_a_literal_constant_adds_partial_variants(self) -> None:
        assert "CREATE INDEX ON orders (user_id) WHERE status = 'pending'" in found(
            "SELECT * FROM orders WHERE status = 'pending' AND user_id = ?"
        )

    def test_sqlalchemy_count_subqueries_are_read(self) -> None:
        statement = "SELECT count(*) FROM (SELECT products.id FROM products WHERE products.category_id = ?) AS anon_1"
        assert found(statement) == ["CREATE INDEX ON products (category_id)"]

    def test_join_keys_are_candidates_and_unqualified_columns_find_their_table(self) -> None:
        statement = "SELECT p.id FROM products p JOIN sellers s ON s.id = p.seller_id WHERE country = 'FR'"
        proposed = found(statement)
        assert "CREATE INDEX ON products (seller_id)" in proposed
        assert "CREATE INDEX ON sellers (country)" in proposed

    def test_in_lists_count_as_equalities_and_between_as_a_range(self) -> None:
        assert found("SELECT * FROM t WHERE a IN (1, 2) AND b BETWEEN 3 AND 4")[0] == "CREATE INDEX ON t (a, b)"

    def test_unparsable_sql_has_no_candidates(self) -> None:
        assert found("SELEC nonsense FROM") == []
        assert statement_kind("SELEC nonsense FROM", "sqlite") == "other"

    def test_statement_kinds(self) -> None:
        assert statement_kind("WITH x AS (SELECT 1) SELECT * FROM x", "sqlite") == "select"
        assert statement_kind("UPDATE t SET a = 1", "postgresql") == "update"
        assert statement_kind("DELETE FROM t", "postgresql") == "delete"
        assert statement_kind("INSERT INTO t VALUES (1)", "postgresql") == "other"

    def test_long_names_are_cut_with_a_digest(self) -> None:
        columns = tuple(IndexColumn(f"a_rather_long_column_name_{n}") for n in range(4))
        name = IndexCandidate(table="orders", columns=columns).name
        assert len(name) == 63
        assert name.startswith("ix_orders_a_rather_long_column_name_0")
        assert name != IndexCandidate(table="orders", columns=columns[:3] + columns[:1]).name

    def test_names_that_are_not_plain_identifiers_are_quoted(self) -> None:
        candidate = IndexCandidate(table="Order Lines", columns=(IndexColumn("Qty", descending=True),))
        assert candidate.definition() == 'CREATE INDEX ON "Order Lines" ("Qty" DESC)'


class TestQueryFiles:
    def test_statements_split_at_semicolons_outside_quotes_and_comments(self) -> None:
        text = "SELECT 1; SELECT ';' -- x;y\n; /* a;b */ ; SELECT \"a;b\" FROM t;\n-- only a comment\n"
        assert split_statements(text) == ["SELECT 1", "SELECT ';' -- x;y", 'SELECT "a;b" FROM t']

    def test_a_report_is_read_heaviest_first(self, tmp_path: Path) -> None:
        report = {
            "schema": "overdrive.db.report/1",
            "dialect": "sqlite",
            "queries": [
                {"fingerprint": "f1", "normalized": "", "count": 1, "total_ms": 1.0,
                 "example": {"statement": "SELECT ?", "parameters": [1]}},
                {"fingerprint": "f2", "normalized": "", "count": 1, "total_ms": 9.0,
                 "example": {"statement": "SELECT :a", "parameters": {"a": 1}}},
            ],
        }  # fmt: skip
        path = tmp_path / "report.json"
        path.write_bytes(orjson.dumps(report))
        loaded = load_queries(path, top=1)
        assert [(q.label, q.sample) for q in loaded.queries] == [("f2", QuerySample("SELECT :a", {"a": 1}))]
        assert loaded.literals_are_constants
        assert loaded.dialect == "sqlite"

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("q.json", "{not json", "not valid JSON"),
            ("q.json", '{"schema": "other"}', "is not an `overdrive db report --json` file"),
            ("q.json", '{"schema": "overdrive.db.report/1", "queries": [{"example": {}}]}', "no example statement"),
            ("q.sql", "-- nothing\n;", "holds no SQL statement"),
            ("q.txt", "SELECT 1", "neither a report"),
        ],
    )
    def test_invalid_files_are_explained(self, tmp_path: Path, name: str, content: str, message: str) -> None:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ConfigurationError, match=message):
            load_queries(path, top=10)

    def test_a_missing_file_is_explained(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="Cannot read"):
            load_queries(tmp_path / "missing.sql", top=10)
