"""`overdrive db advise` end to end on a SQLite file and on PostgreSQL with HypoPG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select

from overdrive.cli import main
from overdrive.db import QueryMonitor, _postgres
from overdrive.db.report import QueryReport
from tests.services import free_port

STATEMENTS = """
-- the newest products of a category, and the newest archived ones
SELECT id, name FROM products WHERE category_id = 7 ORDER BY created_at DESC, id DESC LIMIT 20;
SELECT id, name FROM products WHERE status = 'archived' ORDER BY created_at DESC LIMIT 20;
INSERT INTO products VALUES (0, 1, 'active', 1, 1, 'x');
SELECT * FROM no_such_table;
"""
products = Table(
    "products", MetaData(), Column("id", Integer, primary_key=True), Column("category_id", Integer),
    Column("name", String), Column("created_at", Integer),
)  # fmt: skip
COMPOSITE = "ix_products_category_id_created_at_desc_id_desc ON products (category_id, created_at DESC, id DESC)"
PARTIAL = "ix_products_created_at_desc_where_status ON products (created_at DESC) WHERE status = 'archived'"


def report(placeholder: str) -> dict[str, Any]:
    newest = (
        f"SELECT id, name FROM products WHERE category_id = {placeholder} ORDER BY created_at DESC, id DESC LIMIT 20"
    )
    archived = "SELECT id, name FROM products WHERE status = 'archived' ORDER BY created_at DESC LIMIT 20"
    return {
        "schema": "overdrive.db.report/1",
        "dialect": "sqlite" if placeholder == "?" else "postgresql",
        "queries": [
            {"fingerprint": "newest", "normalized": newest, "count": 40, "total_ms": 800.0,
             "example": {"statement": newest, "parameters": [7]}},
            {"fingerprint": "archived", "normalized": archived, "count": 10, "total_ms": 90.0,
             "example": {"statement": archived, "parameters": None}},
        ],
    }  # fmt: skip


def advise(*args: str) -> Result:
    return CliRunner().invoke(main, ["db", "advise", *args])


def index_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                return int(
                    connection.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'index'").scalar_one()
                )
            return int(
                connection.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'products'").scalar_one()
            )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The URL the CLI is given, and the placeholder of the driver its reports come from."""
    if request.param == "sqlite":
        return f"sqlite:///{request.getfixturevalue('products_sqlite')}", "?"
    url: str = request.getfixturevalue("products_postgres")
    return url.replace("postgresql+psycopg://", "postgresql://", 1), "$1"


class TestAdvise:
    def test_a_sql_file_gets_the_composite_index_and_notes_for_what_it_skipped(
        self, database: tuple[str, str], tmp_path: Path
    ) -> None:
        url, _ = database
        queries = tmp_path / "slow.sql"
        queries.write_text(STATEMENTS)
        before = index_count(url)
        result = advise(url, "--queries", str(queries))
        assert result.exit_code == 0, result.output
        assert COMPOSITE in result.output
        assert "_where_status" not in result.output  # a .sql file's literals stand for parameters
        assert "Skipped statement 3: only SELECT, UPDATE and DELETE" in result.output
        assert "Skipped statement 4" in result.output
        assert "no_such_table" in result.output
        assert index_count(url) == before

    def test_a_report_as_json(self, database: tuple[str, str], tmp_path: Path) -> None:
        url, placeholder = database
        queries = tmp_path / "report.json"
        queries.write_bytes(orjson.dumps(report(placeholder)))
        result = advise(url, "--queries", str(queries), "--json")
        assert result.exit_code == 0, result.output
        output = orjson.loads(result.output)
        assert output["schema"] == "overdrive.db.advice/1"
        assert output["analysed"] == 2
        by_label = {advice["queries"][0]["label"]: advice for advice in output["advice"]}
        assert COMPOSITE in by_label["newest"]["statement"]
        assert PARTIAL in by_label["archived"]["statement"]
        assert by_label["newest"]["columns"][1] == {"name": "created_at", "descending": True}
        if output["dialect"] == "postgresql":
            assert by_label["newest"]["statement"].startswith("CREATE INDEX CONCURRENTLY ")
        assert by_label["newest"]["cost_after"] <= by_label["newest"]["cost_before"] / 2

    def test_top_limits_the_queries_analysed(self, database: tuple[str, str], tmp_path: Path) -> None:
        url, placeholder = database
        queries = tmp_path / "report.json"
        queries.write_bytes(orjson.dumps(report(placeholder)))
        result = advise(url, "--queries", str(queries), "--json", "--top", "1")
        assert result.exit_code == 0, result.output
        assert [a["queries"][0]["label"] for a in orjson.loads(result.output)["advice"]] == ["newest"]

    def test_an_impossible_improvement_finds_nothing(self, database: tuple[str, str], tmp_path: Path) -> None:
        url, _ = database
        queries = tmp_path / "slow.sql"
        queries.write_text(STATEMENTS)
        result = advise(url, "--queries", str(queries), "--min-improvement", "1")
        assert result.exit_code == 0, result.output
        assert "No index cuts the cost of the 2 statements analysed enough." in result.output


class TestErrors:
    def test_an_invalid_queries_file(self, products_sqlite: Path, tmp_path: Path) -> None:
        queries = tmp_path / "report.json"
        queries.write_text("[1, 2]")
        result = advise(f"sqlite:///{products_sqlite}", "--queries", str(queries))
        assert result.exit_code == 1
        assert "is not an `overdrive db report --json` file" in result.output

    def test_a_missing_sqlite_file(self, tmp_path: Path) -> None:
        queries = tmp_path / "q.sql"
        queries.write_text("SELECT 1")
        result = advise(f"sqlite:///{tmp_path / 'missing.sqlite3'}", "--queries", str(queries))
        assert result.exit_code == 1
        assert "There is no SQLite database file at" in result.output

    def test_an_unsupported_url(self, tmp_path: Path) -> None:
        queries = tmp_path / "q.sql"
        queries.write_text("SELECT 1")
        result = advise("mysql://localhost/shop", "--queries", str(queries))
        assert result.exit_code == 1
        assert "must be a PostgreSQL or SQLite file URL" in result.output

    def test_an_unreachable_database(self, tmp_path: Path) -> None:
        queries = tmp_path / "q.sql"
        queries.write_text("SELECT 1")
        result = advise(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", "--queries", str(queries))
        assert result.exit_code == 1
        assert "Cannot connect to the database at postgresql+asyncpg://postgres@127.0.0.1:" in result.output

    @pytest.mark.integration
    def test_hypopg_missing_says_how_to_install_it(
        self, products_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_postgres, "hypopg_installed", lambda connection: False)
        monkeypatch.setattr(_postgres, "hypopg_available", lambda connection: False)
        queries = tmp_path / "q.sql"
        queries.write_text("SELECT id FROM products WHERE category_id = 3")
        result = advise(products_postgres, "--queries", str(queries))
        assert result.exit_code == 1
        assert "needs the HypoPG extension" in result.output
        assert "scripts/install-system-deps postgresql-15-hypopg" in result.output
        assert "CREATE EXTENSION hypopg" in result.output


class TestFromTheQueryMonitor:
    def test_the_monitors_report_feeds_the_advisor(self, products_engine: Engine, tmp_path: Path) -> None:
        """The report `overdrive db report --json` writes (here straight from the store) is what advise reads."""
        monitor = QueryMonitor(n_plus_one="off", call_sites=False)
        monitor.instrument(products_engine)
        try:
            with products_engine.connect() as connection:
                for category in (3, 4, 5):
                    stmt = select(products.c.id, products.c.name).where(products.c.category_id == category)
                    connection.execute(stmt.order_by(products.c.created_at.desc(), products.c.id.desc()).limit(20))
        finally:
            monitor.uninstrument()
        document = QueryReport.from_store(monitor.store, dialect=products_engine.dialect.name).to_json()
        queries = tmp_path / "report.json"
        queries.write_bytes(orjson.dumps(document))
        url = products_engine.url.render_as_string(hide_password=False)
        result = advise(url, "--queries", str(queries), "--json")
        assert result.exit_code == 0, result.output
        [advice] = orjson.loads(result.output)["advice"]
        assert COMPOSITE in advice["statement"]
        assert advice["queries"][0]["label"] == document["queries"][0]["fingerprint"]
