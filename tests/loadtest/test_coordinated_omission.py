"""The coordinated-omission self-test: a server that stalls once, measured in both load models.

The open model must report the tail the stall really caused (within 15% of the analytic percentiles); the closed
model, like wrk, hides it in everything but the maximum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from overdrive.loadtest.runner import LoadOptions, run_load
from overdrive.loadtest.scenario import Scenario
from overdrive.loadtest.stallserver import expected_percentile, running

STALL_AFTER_S = 1.5
STALL_S = 0.6
DURATION_S = 6.0


@contextmanager
def stall_server() -> Iterator[str]:
    with running(STALL_AFTER_S, STALL_S) as url:
        yield url


def test_expected_percentiles_follow_the_uniform_stall_tail() -> None:
    assert expected_percentile(50, stall_s=1, duration_s=10) == pytest.approx(0.001)
    assert expected_percentile(99, stall_s=1, duration_s=10) == pytest.approx(0.901)
    assert expected_percentile(99.9, stall_s=1, duration_s=10) == pytest.approx(0.991)


def test_the_open_model_reports_the_stall() -> None:
    with stall_server() as url:
        result = run_load(Scenario.single(url), LoadOptions(rate=300.0, duration_s=DURATION_S, procs=1))
    for key, p in (("p99", 99.0), ("p99.9", 99.9)):
        expected_ms = expected_percentile(p, stall_s=STALL_S, duration_s=DURATION_S) * 1000
        assert result.latency.percentiles[key] == pytest.approx(expected_ms, rel=0.15), key
    assert result.latency.percentiles["p50"] < 20
    assert result.corrected is None  # the open model needs no correction, and gets none
    assert "corrected_p99" not in result.metrics()


def test_the_closed_model_hides_the_stall_and_the_correction_recovers_it() -> None:
    with stall_server() as url:
        result = run_load(Scenario.single(url), LoadOptions(connections=4, duration_s=DURATION_S, procs=1))
    assert result.latency.max >= STALL_S * 1000 * 0.9, "the stall happened"
    assert result.latency.percentiles["p99"] < STALL_S * 1000 * 0.05, "and the closed model's p99 hides it"
    assert result.corrected is not None
    for key, p in (("p99", 99.0), ("p99.9", 99.9)):
        expected_ms = expected_percentile(p, stall_s=STALL_S, duration_s=DURATION_S) * 1000
        assert result.corrected.percentiles[key] == pytest.approx(expected_ms, rel=0.15), key
    assert result.metrics()["corrected_p99"] == result.corrected.percentiles["p99"]
