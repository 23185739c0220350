"""The statistics behind ``overdrive compare``, which decides whether B is worse than A from repeated runs.

Each sample is one number per run (a run's p99, say), from runs interleaved A B A B ... so that drift in the
machine hits both sides alike. B is a *regression* only if both hold:

* the one-sided Mann-Whitney U test finds B worse than A at ``alpha`` ("B greater than A" when lower is better,
  as for latency; "B less than A" when higher is better, as for throughput), and
* the medians moved the wrong way by more than ``min_effect``: ``median_b / median_a - 1`` above ``min_effect``
  when lower is better, below ``-min_effect`` when higher is better.

The test uses its exact null distribution when both sides have at most 20 runs and there are no ties, and the
normal approximation with tie and continuity corrections otherwise; both agree with
``scipy.stats.mannwhitneyu(b, a, alternative=...)``. The Hodges-Lehmann estimate (the median of all pairwise
differences ``b - a``) is reported as the size of the shift, in the metric's own unit.

Verdicts map to exit codes 0 (no regression), 1 (regression) and 2 (insufficient data: too few runs, NaN or
infinite values, or too few runs for the exact test ever to reach ``alpha``). When every value on both sides is
identical there is nothing to test and the medians are equal, so no shift, however small, happened: that is
reported as ``no_regression`` with a p-value of 1, rather than failing CI on a perfectly stable metric.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Final, Literal, get_args

from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["EXIT_CODES", "Comparison", "Direction", "Verdict", "compare_samples", "mann_whitney_u"]

Direction = Literal["lower_is_better", "higher_is_better"]
"""Whether a larger value of the metric is worse (latency) or better (throughput)."""

Verdict = Literal["no_regression", "regression", "insufficient_data"]
"""The outcome of a comparison."""

EXIT_CODES: Final[Mapping[Verdict, int]] = {"no_regression": 0, "regression": 1, "insufficient_data": 2}
"""The process exit code of ``overdrive compare`` for each verdict."""

_EXACT_MAX_RUNS: Final = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """The verdict on B against A, with the numbers behind it.

    Attributes:
        verdict: ``regression``, ``no_regression`` or ``insufficient_data``.
        p_value: One-sided p-value of B being worse than A (NaN when there was not enough data to test).
        u_statistic: Mann-Whitney U of B: pairs with b > a, plus half the tied pairs.
        median_a: Median of the A runs.
        median_b: Median of the B runs.
        relative_change: ``median_b / median_a - 1``, whatever the direction (+0.2 is B's median 20% higher).
        hodges_lehmann: Median of all pairwise differences ``b - a``, in the metric's unit.
        min_effect: The smallest relative change, in the bad direction, that counts as a regression.
        alpha: The significance level.
        direction: Whether lower or higher values are better.
        n_a: Number of A runs.
        n_b: Number of B runs.
        method: ``exact`` or ``normal`` for the test used, ``none`` when no test ran.
        message: One sentence for humans.

    """

    verdict: Verdict
    p_value: float
    u_statistic: float
    median_a: float
    median_b: float
    relative_change: float
    hodges_lehmann: float
    min_effect: float
    alpha: float
    direction: Direction
    n_a: int
    n_b: int
    method: Literal["exact", "normal", "none"]
    message: str

    @property
    def exit_code(self) -> int:
        """The exit code for this verdict, from `EXIT_CODES`."""
        return EXIT_CODES[self.verdict]


def mann_whitney_u(
    a: Sequence[float], b: Sequence[float], *, direction: Direction
) -> tuple[float, float, Literal["exact", "normal"]]:
    """One-sided Mann-Whitney U test of B being worse than A.

    Args:
        a: The baseline sample, finite values.
        b: The candidate sample, finite values.
        direction: ``lower_is_better`` tests "B greater than A"; ``higher_is_better`` tests "B less than A".

    Returns:
        B's U statistic, the one-sided p-value, and the method used (``exact`` or ``normal``).

    """
    n_a, n_b = len(a), len(b)
    ranks = _ranks([*a, *b])
    u_b = sum(ranks[n_a:]) - n_b * (n_b + 1) / 2
    # "B less than A" is "B greater than A" with U counted from the other end.
    u_worse = u_b if direction == "lower_is_better" else n_a * n_b - u_b
    ties = [t for t in Counter([*a, *b]).values() if t > 1]
    if not ties and max(n_a, n_b) <= _EXACT_MAX_RUNS:
        counts = _exact_counts(min(n_a, n_b), max(n_a, n_b))
        return u_b, sum(counts[round(u_worse) :]) / math.comb(n_a + n_b, n_a), "exact"
    n = n_a + n_b
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1))
    sigma = math.sqrt(n_a * n_b / 12 * (n + 1 - tie_term))
    if sigma == 0:  # every value identical: no evidence either way
        return u_b, 1.0, "normal"
    z = (u_worse - n_a * n_b / 2 - 0.5) / sigma
    return u_b, math.erfc(z / math.sqrt(2)) / 2, "normal"


def compare_samples(
    a: Sequence[float],
    b: Sequence[float],
    *,
    direction: Direction,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    min_runs: int = 5,
) -> Comparison:
    """Decide whether B is a regression from A.

    Args:
        a: One value per baseline run.
        b: One value per candidate run, interleaved with A's when measured.
        direction: Whether lower (latency) or higher (throughput) values are better.
        alpha: Significance level of the one-sided test.
        min_effect: Smallest relative change of medians, in the bad direction, that counts (0.05 is 5%).
        min_runs: Fewest runs per side for any verdict but ``insufficient_data``.

    Returns:
        The verdict with its statistics.

    Raises:
        ConfigurationError: `direction`, `alpha`, `min_effect` or `min_runs` is out of range.

    """
    _check_options(direction, alpha, min_effect, min_runs)
    # Starts as "insufficient data", every statistic NaN; each way out fills in what it knows.
    report = Comparison(
        verdict="insufficient_data",
        p_value=math.nan,
        u_statistic=math.nan,
        median_a=math.nan,
        median_b=math.nan,
        relative_change=math.nan,
        hodges_lehmann=math.nan,
        min_effect=min_effect,
        alpha=alpha,
        direction=direction,
        n_a=len(a),
        n_b=len(b),
        method="none",
        message="",
    )
    reason = _insufficiency(a, b, alpha=alpha, min_runs=min_runs)
    if reason is not None:
        return replace(report, message=f"Insufficient data: {reason}.")
    median_a, median_b = statistics.median(a), statistics.median(b)
    change = _relative_change(median_a, median_b)
    shift = statistics.median([y - x for x in a for y in b])
    report = replace(report, median_a=median_a, median_b=median_b, relative_change=change, hodges_lehmann=shift)
    if len(set(a) | set(b)) == 1:
        message = f"Every run measured {median_a:.6g}: no change, so no regression."
        return replace(report, verdict="no_regression", p_value=1.0, u_statistic=len(a) * len(b) / 2, message=message)
    u_b, p_value, method = mann_whitney_u(a, b, direction=direction)
    worse = change if direction == "lower_is_better" else -change
    significant, large = p_value <= alpha, worse > min_effect
    verdict: Verdict = "regression" if significant and large else "no_regression"
    message = (
        f"Median {median_a:.6g} -> {median_b:.6g} ({change:+.1%}, {direction.replace('_', ' ')}), "
        f"p = {p_value:.3g} ({'' if significant else 'not '}significant at {alpha}), "
        f"change {'above' if large else 'within'} the {min_effect:.1%} minimum effect: {verdict.replace('_', ' ')}."
    )
    return replace(report, verdict=verdict, p_value=p_value, u_statistic=u_b, method=method, message=message)


def _insufficiency(a: Sequence[float], b: Sequence[float], *, alpha: float, min_runs: int) -> str | None:
    """Why no verdict can be reached from these runs, or None if one can."""
    if min(len(a), len(b)) < min_runs:
        return f"need at least {min_runs} runs per side, got {len(a)} for A and {len(b)} for B"
    if not all(math.isfinite(value) for value in [*a, *b]):
        return "some runs reported NaN or infinite values"
    # The most extreme arrangement of ranks has probability 1 / C(n_a + n_b, n_a); no rank test can do better.
    if 1 / math.comb(len(a) + len(b), len(a)) > alpha:
        return f"{len(a)} and {len(b)} runs can never reach significance at alpha = {alpha}"
    return None


def _check_options(direction: str, alpha: float, min_effect: float, min_runs: int) -> None:
    if direction not in get_args(Direction):
        msg = f"Direction must be one of {', '.join(get_args(Direction))}, not {direction!r}."
        raise ConfigurationError(msg)
    if not 0 < alpha < 1:
        msg = f"Alpha must be between 0 and 1 exclusive, not {alpha}."
        raise ConfigurationError(msg)
    if not min_effect >= 0:
        msg = f"The minimum effect must be zero or more, not {min_effect}."
        raise ConfigurationError(msg)
    if min_runs < 2:  # noqa: PLR2004 - a median of one run says nothing about noise
        msg = f"At least 2 runs per side are needed, not {min_runs}."
        raise ConfigurationError(msg)


def _relative_change(median_a: float, median_b: float) -> float:
    if median_a == 0:
        return 0.0 if median_b == 0 else math.copysign(math.inf, median_b)
    return (median_b - median_a) / abs(median_a)


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


@cache
def _exact_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) equally likely arrangements give each U = 0..m*n, with no ties.

    Dynamic programming over U counts: the generating function is the Gaussian binomial
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), built one factor at a time. Truncating at degree m*n is safe
    because dividing by (1 - q^i) is a running sum that only reads lower degrees.
    """
    size = m * n + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, m + 1):
        for u in range(size - 1, n + i - 1, -1):
            counts[u] -= counts[u - n - i]
        for u in range(i, size):
            counts[u] += counts[u - i]
    return tuple(counts)
