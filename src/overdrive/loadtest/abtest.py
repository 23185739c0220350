"""Interleaved A/B load runs for ``overdrive compare``: A B A B ..., one metric sample per run.

Alternating the two targets spreads slow drift of a noisy machine (other tenants, thermal, page cache) over both
sides alike; the samples then go to `compare_samples`, which decides with a rank test and a minimum effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from overdrive.exceptions import ConfigurationError
from overdrive.loadtest.compare import Comparison, Direction, compare_samples
from overdrive.loadtest.runner import run_load

if TYPE_CHECKING:
    from collections.abc import Callable

    from overdrive.loadtest.result import LoadResult
    from overdrive.loadtest.runner import LoadOptions
    from overdrive.loadtest.scenario import Scenario

__all__ = ["METRICS", "ABResult", "direction_of", "metric_of", "run_interleaved"]

METRICS = ("p50", "p90", "p95", "p99", "p99.9", "mean", "max", "rps", "errors")
"""Metrics a comparison can be made on (latencies in ms; rps in requests/s; errors as a fraction)."""


def direction_of(metric: str) -> Direction:
    """Whether more of `metric` is worse (latency, errors) or better (rps)."""
    return "higher_is_better" if metric == "rps" else "lower_is_better"


def metric_of(result: LoadResult, metric: str) -> float:
    """One run's value of `metric`.

    Raises:
        ConfigurationError: the metric is not one of `METRICS`.

    """
    if metric not in METRICS:
        msg = f"Cannot compare on {metric!r}; choose one of: {', '.join(METRICS)}."
        raise ConfigurationError(msg)
    return result.metrics()[metric]


@dataclass(frozen=True, kw_only=True)
class ABResult:
    """The runs of both sides, their samples, and the verdict."""

    metric: str
    samples_a: list[float]
    samples_b: list[float]
    comparison: Comparison
    results_a: list[LoadResult]
    results_b: list[LoadResult]


def run_interleaved(
    scenario_a: Scenario,
    scenario_b: Scenario,
    options: LoadOptions,
    *,
    runs: int,
    metric: str = "p50",
    alpha: float = 0.05,
    min_effect: float = 0.05,
    on_run: Callable[[str, int, LoadResult], None] | None = None,
) -> ABResult:
    """Run A and B alternately `runs` times each, and compare their `metric` samples.

    Raises:
        ConfigurationError: bad metric or run count.
        LoadTestError: a target became unreachable.

    """
    if metric not in METRICS:
        msg = f"Cannot compare on {metric!r}; choose one of: {', '.join(METRICS)}."
        raise ConfigurationError(msg)
    if runs < 2:  # noqa: PLR2004
        msg = f"A comparison needs at least two runs per side, not {runs}."
        raise ConfigurationError(msg)
    results: dict[str, list[LoadResult]] = {"A": [], "B": []}
    for index in range(runs):
        # Alternate which side goes first in each pair too, so neither always follows the other.
        order = (("A", scenario_a), ("B", scenario_b)) if index % 2 == 0 else (("B", scenario_b), ("A", scenario_a))
        for side, scenario in order:
            result = run_load(scenario, options)
            results[side].append(result)
            if on_run is not None:
                on_run(side, index, result)
    samples_a = [metric_of(r, metric) for r in results["A"]]
    samples_b = [metric_of(r, metric) for r in results["B"]]
    comparison = compare_samples(
        samples_a, samples_b, direction=direction_of(metric), alpha=alpha, min_effect=min_effect
    )
    return ABResult(
        metric=metric,
        samples_a=samples_a,
        samples_b=samples_b,
        comparison=comparison,
        results_a=results["A"],
        results_b=results["B"],
    )
