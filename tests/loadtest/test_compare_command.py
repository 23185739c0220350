"""`overdrive compare` end to end: interleaved runs against real servers of known speed, verdicts, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from overdrive.cli import main
from overdrive.loadtest.stallserver import running


def steady_server(service_ms: float) -> AbstractContextManager[str]:
    """A server that answers every request after `service_ms` (the stall server, with no stall)."""
    return running(1e9, 0, service_ms=service_ms)


@pytest.fixture(scope="module")
def fast() -> Iterator[str]:
    with steady_server(4) as url:
        yield url


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    with steady_server(8) as url:
        yield url


def _compare(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["compare", *args])
    return result.exit_code, result.output


def test_a_slower_b_is_a_regression(fast: str, slow: str, tmp_path: Path) -> None:
    out = tmp_path / "verdict.json"
    code, output = _compare(fast, slow, "--runs", "5", "-d", "400ms", "-c", "4", "--procs", "1", "--json", str(out))
    assert code == 1, output
    assert "regression:" in output
    verdict = orjson.loads(out.read_bytes())
    assert verdict["schema"] == "overdrive.compare/1"
    assert len(verdict["a"]["samples"]) == len(verdict["b"]["samples"]) == 5
    assert verdict["comparison"]["verdict"] == "regression"
    assert verdict["comparison"]["relative_change"] > 0.5


def test_the_same_server_is_no_regression(fast: str) -> None:
    code, output = _compare(fast, fast, "--runs", "5", "-d", "400ms", "-c", "4", "--procs", "1")
    assert code == 0, output
    assert "no_regression" in output


def test_a_faster_b_is_no_regression_and_rps_compares_the_other_way(fast: str, slow: str) -> None:
    code, output = _compare(slow, fast, "--runs", "5", "-d", "400ms", "-c", "4", "--procs", "1", "--metric", "rps")
    assert code == 0, output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "2"], "insufficient_data"),
        (["--metric", "p42"], "Cannot compare on 'p42'"),
        (["--min-effect", "lots"], "as a minimum effect"),
    ],
)
def test_not_enough_data_or_bad_options_exit_2(fast: str, args: list[str], message: str) -> None:
    code, output = _compare(fast, fast, "-d", "300ms", "-c", "2", "--procs", "1", *args)
    assert code == 2
    assert message in output.replace("\n", " ")


def test_an_unreachable_side_exits_2(fast: str) -> None:
    code, output = _compare(fast, "http://127.0.0.1:9/", "--runs", "3", "-d", "300ms", "--procs", "1")
    assert code == 2
    assert "Cannot connect to 127.0.0.1:9" in output
