"""`overdrive load` from the command line: the table, the files, the threshold gate and its exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from overdrive.cli import main
from overdrive.loadtest.result import LoadResult
from tests.loadtest.servers import MisbehavingServer, misbehaving_server


@pytest.fixture(scope="module")
def server() -> Iterator[MisbehavingServer]:
    with misbehaving_server() as running:
        yield running


def _load(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["load", *args])
    return result.exit_code, result.output


def test_thresholds_that_hold_exit_0_and_files_are_written(server: MisbehavingServer, tmp_path: Path) -> None:
    code, output = _load(
        f"{server.url}/ok", "-c", "2", "-d", "600ms", "--procs", "1", "--threshold", "p99<5s",
        "--threshold", "errors<1%", "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert code == 0, output
    assert "closed model" in output
    assert "✓ p99 =" in output
    result = LoadResult.from_json((tmp_path / "r.json").read_bytes())
    assert result.completed > 0
    assert [t["passed"] for t in result.thresholds] == [True, True]
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == 3
    assert "GET /ok" in html


def test_a_failed_threshold_exits_1(server: MisbehavingServer) -> None:
    code, output = _load(f"{server.url}/status/500", "-d", "500ms", "--procs", "1", "--threshold", "errors<1%")
    assert code == 1
    assert "✗ errors = 100%" in output


def test_scoped_thresholds_name_a_request(server: MisbehavingServer) -> None:
    code, output = _load(
        f"{server.url}/ok", "-d", "500ms", "--procs", "1", "--quiet", "--threshold", 'p99{name="GET /nope"}<1s'
    )
    assert code == 1
    assert "GET /nope" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "1s", "--threshold", "p98<5ms"], "unknown metric"),
        (["-d", "soon"], "as a duration"),
        (["--stage", "5s"], "DURATION:RATE"),
        (["-H", "broken"], "Name: value"),
        (["--body", "@/nonexistent/body"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_message(server: MisbehavingServer, args: list[str], message: str) -> None:
    code, output = _load(f"{server.url}/ok", *args)
    assert code == 2
    assert message in output.replace("\n", " ")


def test_a_url_or_scenario_is_required() -> None:
    code, output = _load("-d", "1s")
    assert code == 2
    assert "Give a URL" in output


def test_a_scenario_file_with_a_post_body(server: MisbehavingServer, tmp_path: Path) -> None:
    file = tmp_path / "mix.py"
    file.write_text(
        "from overdrive.loadtest.scenario import RequestTemplate, Scenario\n"
        "scenario = Scenario('http://127.0.0.1:1', [\n"
        "    RequestTemplate('/ok', name='read', weight=4),\n"
        "    RequestTemplate('/chunked', method='POST', name='write', body=b'{}',\n"
        "                    headers={'Content-Type': 'application/json'}),\n"
        "])\n"
    )
    body = tmp_path / "body.bin"
    body.write_bytes(b"x")
    code, output = _load(server.url, "--scenario", str(file), "-d", "600ms", "--procs", "1", "--quiet")
    assert code == 0, output
    assert "read" in output
    assert "write" in output
    code, output = _load(f"{server.url}/ok", "-m", "POST", "--body", f"@{body}", "-d", "300ms", "--procs", "1")
    assert code == 0, output


def test_open_model_from_the_cli(server: MisbehavingServer) -> None:
    code, output = _load(f"{server.url}/ok", "--rate", "200", "-d", "1s", "--procs", "1", "--threshold", "dropped==0")
    assert code == 0, output
    assert "open model" in output
    assert "target 200 req/s" in output
