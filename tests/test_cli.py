"""The `overdrive` command: version, seeding, a short demo, serving, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from overdrive import __version__
from overdrive.cli import main
from overdrive.demo.server import free_port

SCALE = "0.002"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_seed_then_seed_again_is_instant(tmp_path: Path) -> None:
    runner = CliRunner(env={"DATABASE_URL": ""})
    first = runner.invoke(main, ["demo", "seed", "--scale", SCALE, "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "Seeded in" in first.output
    second = runner.invoke(main, ["demo", "seed", "--scale", SCALE, "--data-dir", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert "Already seeded" in second.output
    assert first.output.split("digest ")[1] == second.output.split("digest ")[1]


def test_bad_options_get_clear_messages(tmp_path: Path) -> None:
    runner = CliRunner(env={"DATABASE_URL": ""})
    scale = runner.invoke(main, ["demo", "seed", "--scale", "50", "--data-dir", str(tmp_path)])
    assert scale.exit_code == 2
    assert "between 0.001 and 10" in scale.output
    url = runner.invoke(main, ["demo", "seed", "--database-url", "mysql://db/shop"])
    assert url.exit_code == 1
    assert "must be a PostgreSQL or SQLite URL" in url.output
    duration = runner.invoke(main, ["demo", "--duration", "0"])
    assert duration.exit_code == 2


def test_a_short_demo_prints_the_comparison(tmp_path: Path) -> None:
    runner = CliRunner(env={"DATABASE_URL": "", "COLUMNS": "200"})
    args = [
        "demo", "--scale", SCALE, "--data-dir", str(tmp_path / "data"), "--report-dir", str(tmp_path / "r"),
        "--duration", "1", "--warmup", "0", "--concurrency", "2", "--profile", "naive", "--profile", "tuned",
    ]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Demo summary" in result.output
    assert "req/s vs naive" in result.output
    assert "tuned" in result.output
    assert list((tmp_path / "r").glob("demo-*.html"))


def test_serve_runs_the_shop_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": ""}
    command = [sys.executable, "-m", "overdrive", "demo", "serve", "--scale", SCALE, "--data-dir", str(tmp_path)]
    with subprocess.Popen([*command, "--port", str(port)], env=env) as proc:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/healthz")
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                break
            assert response.status_code == 200
        finally:
            proc.terminate()
