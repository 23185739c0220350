"""Mann-Whitney U against scipy's reference values, the verdict rules, and the gate's error rates by simulation."""

from __future__ import annotations

import math
import random

import pytest

from overdrive.exceptions import ConfigurationError
from overdrive.loadtest.compare import EXIT_CODES, Comparison, Direction, compare_samples, mann_whitney_u

# Reference samples. The p-values below come from scipy 1.17.1 on Python 3.11.7, an independent implementation,
# computed once and hard-coded because scipy is not a dependency. Each is `scipy.stats.mannwhitneyu(B, A,
# alternative=ALT, method=METHOD)` with the default use_continuity=True; its `.statistic` is B's U.
A1 = [10.1, 11.3, 9.8, 10.7, 10.4]
B1 = [11.9, 10.9, 12.4, 11.1, 10.6, 12.0]
A3 = [float((i * 41) % 101) for i in range(20)]  # distinct integers
B3 = [float((i * 53) % 97) + 10.5 for i in range(17)]  # distinct half-integers: no ties with A3
B7 = [v + 40.0 for v in B3]
A4 = [float(i % 7) for i in range(30)]  # heavy ties
B4 = [float(i % 9) for i in range(25)]
A5 = [12.0, 13.0, 12.0, 14.0, 13.0, 12.5, 13.0, 12.0]  # small, with ties
B5 = [13.0, 14.0, 13.5, 14.0, 12.5, 15.0, 13.0, 14.5]
A6 = [float((i * 41) % 101) for i in range(25)]  # no ties but more than 20 runs
B6 = [float((i * 53) % 97) + 10.5 for i in range(22)]

REFERENCES = [
    # (A, B, direction, U, p, method); the scipy call is in each comment.
    (A1, B1, "lower_is_better", 26.0, 0.025974025974025976, "exact"),  # mannwhitneyu(B1, A1, "greater", "exact")
    (A1, B1, "higher_is_better", 26.0, 0.9848484848484849, "exact"),  # mannwhitneyu(B1, A1, "less", "exact")
    (A3, B3, "lower_is_better", 190.0, 0.2783532473671275, "exact"),  # mannwhitneyu(B3, A3, "greater", "exact")
    (A3, B3, "higher_is_better", 190.0, 0.7317037191777241, "exact"),  # mannwhitneyu(B3, A3, "less", "exact")
    (A3, B7, "lower_is_better", 291.0, 5.252886715381275e-05, "exact"),  # mannwhitneyu(B7, A3, "greater", "exact")
    (A4, B4, "lower_is_better", 450.0, 0.10210868801848033, "normal"),  # mannwhitneyu(B4, A4, "greater", "asymptotic")
    (A4, B4, "higher_is_better", 450.0, 0.9008952289568628, "normal"),  # mannwhitneyu(B4, A4, "less", "asymptotic")
    (A5, B5, "lower_is_better", 52.5, 0.01590882722370303, "normal"),  # mannwhitneyu(B5, A5, "greater", "asymptotic")
    (A5, B5, "higher_is_better", 52.5, 0.9879028172134878, "normal"),  # mannwhitneyu(B5, A5, "less", "asymptotic")
    (A6, B6, "lower_is_better", 317.0, 0.18813684731331032, "normal"),  # mannwhitneyu(B6, A6, "greater", "asymptotic")
    (A6, B6, "higher_is_better", 317.0, 0.8175593429790409, "normal"),  # mannwhitneyu(B6, A6, "less", "asymptotic")
]


class TestMannWhitneyU:
    @pytest.mark.parametrize(("a", "b", "direction", "expected"), [(*r[:3], r[3:]) for r in REFERENCES])
    def test_matches_scipy(
        self, a: list[float], b: list[float], direction: Direction, expected: tuple[float, float, str]
    ) -> None:
        """U and the one-sided p-value agree with scipy, exact for small tie-free samples, normal otherwise."""
        u, p, method = mann_whitney_u(a, b, direction=direction)
        assert (u, method) == (expected[0], expected[2])
        assert p == pytest.approx(expected[1], rel=1e-12)

    def test_exact_distribution_sums_to_all_arrangements(self) -> None:
        """With every U counted, the exact p-value of U >= 0 is 1 and of the maximum U is 1 / C(m+n, m)."""
        a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
        assert mann_whitney_u(a, b, direction="lower_is_better") == (12.0, 1 / math.comb(7, 3), "exact")
        assert mann_whitney_u(a, b, direction="higher_is_better") == (12.0, 1.0, "exact")

    def test_all_identical_values_give_p_one(self) -> None:
        """With no spread at all there is no evidence of a shift, in either direction."""
        assert mann_whitney_u([3.0] * 4, [3.0] * 5, direction="lower_is_better") == (10.0, 1.0, "normal")


def _compare(
    a: list[float],
    b: list[float],
    direction: Direction = "lower_is_better",
    *,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    min_runs: int = 5,
) -> Comparison:
    return compare_samples(a, b, direction=direction, alpha=alpha, min_effect=min_effect, min_runs=min_runs)


class TestVerdict:
    def test_regression_needs_significance_and_effect(self) -> None:
        """A significant 10.6% rise in the median of a latency is a regression, exit code 1."""
        result = _compare(A1, B1)
        assert (result.verdict, result.exit_code, result.method) == ("regression", 1, "exact")
        assert (result.median_a, result.median_b, result.n_a, result.n_b) == (10.4, 11.5, 5, 6)
        assert result.relative_change == pytest.approx(11.5 / 10.4 - 1)
        assert result.hodges_lehmann == pytest.approx(1.05)  # numpy.median(numpy.subtract.outer(B1, A1))
        assert result.message == (
            "Median 10.4 -> 11.5 (+10.6%, lower is better), p = 0.026 (significant at 0.05), "
            "change above the 5.0% minimum effect: regression."
        )

    def test_small_effect_is_not_a_regression(self) -> None:
        """Significant but below min_effect: no regression, exit code 0."""
        result = _compare(A1, B1, min_effect=0.2)
        assert (result.verdict, result.exit_code) == ("no_regression", 0)
        assert "within the 20.0% minimum effect" in result.message

    def test_large_but_not_significant_is_not_a_regression(self) -> None:
        """A big move of the median that the test cannot tell from noise is not a regression."""
        result = _compare(A1, B1, alpha=0.01)
        assert result.verdict == "no_regression"
        assert "not significant at 0.01" in result.message

    def test_throughput_drop_is_a_regression(self) -> None:
        """For higher-is-better metrics, B falling is the regression and B rising is not."""
        fast, slow = [1000.0, 1010.0, 990.0, 1005.0, 995.0], [800.0, 810.0, 790.0, 805.0, 795.0]
        assert _compare(fast, slow, "higher_is_better").verdict == "regression"
        assert _compare(slow, fast, "higher_is_better").verdict == "no_regression"
        assert _compare(fast, slow, "higher_is_better").relative_change == pytest.approx(-0.2)

    def test_improvement_is_not_a_regression(self) -> None:
        """Latency going down is never a regression."""
        assert _compare(B1, A1).verdict == "no_regression"

    def test_identical_data_is_no_regression(self) -> None:
        """Every run the same value: nothing moved, so no regression with p = 1 rather than an error exit."""
        result = _compare([5.0] * 6, [5.0] * 6)
        assert (result.verdict, result.p_value, result.relative_change, result.method) == (
            "no_regression",
            1.0,
            0,
            "none",
        )
        assert result.message == "Every run measured 5: no change, so no regression."

    def test_constant_sides_that_differ_are_tested(self) -> None:
        """Zero variance within each side but different values is a clear shift, tested with ties."""
        result = _compare([5.0] * 6, [7.0] * 6)
        assert (result.verdict, result.method) == ("regression", "normal")

    def test_zero_baseline_median(self) -> None:
        """A zero baseline (an error count, say) makes any rise an infinite relative change."""
        assert _compare([0.0] * 5, [1.0, 2.0, 1.0, 3.0, 2.0]).relative_change == math.inf


class TestInsufficientData:
    @pytest.mark.parametrize(
        ("a", "b", "min_runs", "reason"),
        [
            ([1.0] * 4, [2.0] * 5, 5, "need at least 5 runs per side, got 4 for A and 5 for B"),
            ([1.0, 2.0], [3.0, 4.0], 2, "2 and 2 runs can never reach significance at alpha = 0.05"),
            ([1.0, 2.0, 3.0, math.nan, 5.0], A1, 5, "some runs reported NaN or infinite values"),
            (A1, [1.0, 2.0, 3.0, math.inf, 5.0], 5, "some runs reported NaN or infinite values"),
        ],
    )
    def test_exit_code_two(self, a: list[float], b: list[float], min_runs: int, reason: str) -> None:
        """Too few runs, non-finite values or hopeless sample sizes give insufficient_data with NaN statistics."""
        result = _compare(a, b, min_runs=min_runs)
        assert (result.verdict, result.exit_code, result.method) == ("insufficient_data", 2, "none")
        assert result.message == f"Insufficient data: {reason}."
        assert math.isnan(result.p_value)
        assert math.isnan(result.median_a)

    def test_exit_codes(self) -> None:
        """The three verdicts map to 0, 1 and 2."""
        assert EXIT_CODES == {"no_regression": 0, "regression": 1, "insufficient_data": 2}


class TestOptions:
    @pytest.mark.parametrize(
        ("options", "fragment"),
        [
            ({"direction": "sideways"}, "Direction must be one of lower_is_better, higher_is_better"),
            ({"alpha": 0.0}, "Alpha must be between 0 and 1"),
            ({"alpha": 1.0}, "Alpha must be between 0 and 1"),
            ({"min_effect": -0.1}, "minimum effect must be zero or more"),
            ({"min_effect": math.nan}, "minimum effect must be zero or more"),
            ({"min_runs": 1}, "At least 2 runs per side"),
        ],
    )
    def test_bad_options_raise(self, options: dict[str, object], fragment: str) -> None:
        """Out-of-range settings are configuration errors, not verdicts."""
        arguments: dict[str, object] = {"direction": "lower_is_better"} | options
        with pytest.raises(ConfigurationError, match=fragment):
            compare_samples(A1, B1, **arguments)  # type: ignore[arg-type]


def _lognormal(rng: random.Random, median: float, cv: float, n: int) -> list[float]:
    """`n` runs around `median` with coefficient of variation `cv`: lognormal with sigma^2 = ln(1 + cv^2)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(n)]


def _regression_rate(trials: int, *, slowdown: float, cv: float, seed: int, min_effect: float = 0.05) -> float:
    rng = random.Random(seed)
    verdicts = [
        _compare(
            _lognormal(rng, 100.0, cv, 10), _lognormal(rng, 100.0 * slowdown, cv, 10), min_effect=min_effect
        ).verdict
        for _ in range(trials)
    ]
    return verdicts.count("regression") / trials


class TestErrorRates:
    """Simulated runs, 10 per side. Noise model: each run's metric is lognormal around its median, independent
    from run to run; B's median is A's times the injected slowdown."""

    def test_false_positive_rate_of_the_gate(self) -> None:
        """400 A/A trials with 20% run-to-run noise: the full gate calls at most 5% of them regressions."""
        assert _regression_rate(400, slowdown=1.0, cv=0.2, seed=1) <= 0.05

    def test_minimum_effect_filters_false_positives_in_quiet_runs(self) -> None:
        """With 5% noise the U test alone rejects about alpha of A/A trials (its exact size at 10 + 10 runs is
        4.46%); requiring a 5% move of the median as well removes most of those."""
        test_alone = _regression_rate(400, slowdown=1.0, cv=0.05, seed=5, min_effect=0.0)
        gate = _regression_rate(400, slowdown=1.0, cv=0.05, seed=5)
        assert test_alone <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400)
        assert gate <= test_alone / 2

    def test_power_against_a_20_percent_slowdown(self) -> None:
        """200 trials with 5% run-to-run noise and B 20% slower: at least 90% are caught."""
        assert _regression_rate(200, slowdown=1.2, cv=0.05, seed=3) >= 0.9

    def test_power_with_effect_near_the_minimum(self) -> None:
        """A 10% slowdown in 5% noise is still caught most of the time; the 5% minimum effect costs little."""
        assert _regression_rate(200, slowdown=1.1, cv=0.05, seed=4) >= 0.75
