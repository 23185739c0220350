"""The demo end to end: real server processes, the driver process, the tables and the HTML report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from overdrive.demo.driver import DriveProgress, DriveSpec, HTTPXDriver
from overdrive.demo.driver import main as driver_main
from overdrive.demo.results import DemoResult
from overdrive.demo.runner import DemoOptions, DemoRunner
from overdrive.demo.server import serve, server_command
from overdrive.demo.settings import ShopSettings
from overdrive.exceptions import ConfigurationError, DemoError, ServerStartError
from tests.demo.conftest import TEST_PLAN


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_the_app_runs_on_both_servers_and_the_driver_measures_it(seeded: ShopSettings, server: str) -> None:
    seen: list[DriveProgress] = []
    with serve(seeded, server=server) as running:  # type: ignore[arg-type]
        assert httpx.get(f"{running.base_url}/products/1").status_code == 200
        spec = DriveSpec(base_url=running.base_url, duration_s=1.5, concurrency=4, plan=TEST_PLAN)
        result = HTTPXDriver().run(spec, seen.append)
    assert result.requests > 10
    assert result.errors == 0
    assert result.latency.p50 > 0
    assert {e.name for e in result.endpoints} <= {
        "GET /products", "GET /products/{product_id}", "GET /categories/{category_id}/top", "GET /search",
        "POST /orders", "GET /orders/export",
    }  # fmt: skip
    assert sum(e.requests for e in result.endpoints) == result.requests
    assert sum(point[1] for point in result.timeline) == result.requests
    assert seen
    assert seen[-1].requests == result.requests


def test_an_unseeded_database_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    settings = ShopSettings(data_dir=tmp_path, plan=TEST_PLAN)
    with pytest.raises(ServerStartError, match=r"has not been seeded|not reachable or not seeded"), serve(settings):
        pass


def test_refused_connections_count_as_errors_and_the_run_goes_on() -> None:
    spec = DriveSpec(base_url="http://127.0.0.1:9", duration_s=0.5, concurrency=1, plan=TEST_PLAN)
    result = HTTPXDriver().run(spec)
    assert result.requests == result.errors > 0
    assert {e.statuses.get("ConnectError", 0) for e in result.endpoints} != {0}


def test_a_failing_driver_process_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DriveSpec(base_url="http://127.0.0.1:9", duration_s=0.5, concurrency=1, plan=TEST_PLAN)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(DemoError, match="load driver exited with status 1"):
        HTTPXDriver().run(spec)


@pytest.mark.parametrize("url", ["not a url", "ftp://host/", "http://"])
def test_an_invalid_target_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        DriveSpec(base_url=url, duration_s=1, concurrency=1)


def test_the_driver_process_explains_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert driver_main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_server_is_refused() -> None:
    with pytest.raises(AssertionError):
        server_command("hypercorn", "127.0.0.1", 1)  # type: ignore[arg-type]


def test_the_whole_demo_writes_tables_and_a_report(seeded: ShopSettings, tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    options = DemoOptions(
        settings=seeded,
        profiles=("naive", "database", "caching"),  # tuned runs the caching code: skipped to keep within the timeout
        duration_s=1.5,
        warmup_s=0.5,
        concurrency=4,
        report_dir=tmp_path / "reports",
    )
    result, html = DemoRunner(options, console=console).run()
    assert [p.profile for p in result.profiles] == ["naive", "database", "caching"]
    for profile in result.profiles:
        assert profile.requests > 0
        assert profile.errors == 0
        assert profile.queries_per_request is not None
    naive, database = (p.queries_per_request or 0.0 for p in result.profiles[:2])
    assert naive > database > 1
    text = console.export_text()
    assert "Demo summary" in text
    assert "DB q/req" in text
    assert html.exists()
    assert "<svg" in html.read_text()
    saved = next((tmp_path / "reports").glob("*.json"))
    assert DemoResult.from_json(saved.read_bytes()) == result
    assert os.cpu_count() == result.cpus


@pytest.mark.parametrize(
    "options",
    [{"duration_s": 0}, {"warmup_s": -1}, {"concurrency": 0}, {"profiles": ()}],
)
def test_demo_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="The demo needs"):
        DemoOptions(**options)


def test_tables_get_100_columns_when_the_output_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Piped to a log file, rich would assume 80 columns and cut the tables' figures short."""
    monkeypatch.delenv("COLUMNS", raising=False)
    console = DemoRunner(DemoOptions()).console
    assert not console.is_terminal
    assert console.width >= 100


def test_the_demo_runs_every_step_in_order_by_default() -> None:
    assert DemoOptions().profiles == ("naive", "database", "caching", "tuned")
