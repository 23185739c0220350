"""CI gates over a load run's metrics: ``p99<50ms``, ``errors<0.1%``, ``rps>=1000``.

A threshold is one line of text, parsed once into a `Threshold` and checked against the numbers a run produced.
Whitespace is allowed between tokens::

    threshold := metric [ scope ] op number [ unit ]
    scope     := "{" "name" "=" '"' request-name '"' "}"       e.g. p99{name="GET /products"}<100ms
    op        := "<" | "<=" | ">" | ">=" | "=="
    number    := digits [ "." digits ] | "." digits

The metric decides which units make sense, and the limit is converted to the metric's canonical unit at parse
time. The same canonical units are expected in the ``metrics`` mapping given to `evaluate`:

==========================================  ===============================  ==================================
metric                                      units in the threshold           canonical unit in ``metrics``
==========================================  ===============================  ==================================
p50, p90, p95, p99, p99.9, p99.99, mean,    us, µs, ms, s (required)         milliseconds
max; corrected_p50 ... corrected_p99.99
errors, late                                % or a plain fraction in 0..1    fraction in 0..1
rps                                         none                             requests per second
dropped                                     none                             a count of requests
==========================================  ===============================  ==================================

A scope names one kind of request, as the load generator labels it; its metrics come from ``by_name``. The braces
were chosen over a ``GET /products: p99<100ms`` prefix because request names may themselves contain colons.
The ``corrected_*`` percentiles exist for closed-model runs only (latency corrected after the fact for coordinated
omission); an open-model run has none, so a threshold on one fails there.
Anything that does not parse, an unknown metric, or a unit the metric cannot take raises `ConfigurationError`;
a metric missing from the run fails its threshold. Nothing is ever passed silently.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = ["METRICS", "Threshold", "ThresholdResult", "evaluate", "parse_threshold"]


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a family of metrics accepts as units (to canonical factors) and how its values are shown."""

    units: Mapping[str, Decimal]
    accepted: str
    show: Callable[[float], str]


_LATENCY: Final = _Kind(
    units={
        "us": Decimal("0.001"),
        "\u00b5s": Decimal("0.001"),  # MICRO SIGN
        "\u03bcs": Decimal("0.001"),  # GREEK SMALL LETTER MU, which keyboards often produce instead
        "ms": Decimal(1),
        "s": Decimal(1000),
    },
    accepted="a latency unit (us, \u00b5s, ms or s)",
    show=lambda value: f"{value:.6g} ms",
)
_FRACTION: Final = _Kind(
    units={"%": Decimal("0.01"), "": Decimal(1)},
    accepted="a percentage (5%) or a plain fraction between 0 and 1 (0.05)",
    show=lambda value: f"{value * 100:.6g}%",
)
_RATE: Final = _Kind(
    units={"": Decimal(1)}, accepted="a plain number of requests per second", show="{:.6g} req/s".format
)
_COUNT: Final = _Kind(units={"": Decimal(1)}, accepted="a plain count", show="{:.6g}".format)

_KINDS: Final[Mapping[str, _Kind]] = {
    **dict.fromkeys(("p50", "p90", "p95", "p99", "p99.9", "p99.99", "mean", "max"), _LATENCY),
    **dict.fromkeys(
        ("corrected_p50", "corrected_p90", "corrected_p95", "corrected_p99", "corrected_p99.9", "corrected_p99.99"),
        _LATENCY,
    ),
    "errors": _FRACTION,
    "late": _FRACTION,
    "rps": _RATE,
    "dropped": _COUNT,
}

METRICS: Final[tuple[str, ...]] = tuple(_KINDS)
"""The canonical names of the metrics a threshold may name, in the order error messages list them."""

_KNOWN: Final = f"Known metrics: {', '.join(METRICS)}."
_OPERATORS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_GRAMMAR: Final = re.compile(
    r"""\s*(?P<metric>[A-Za-z][\w.]*)
        \s*(?:\{\s*name\s*=\s*"(?P<name>[^"]*)"\s*\})?
        \s*(?P<op><=|>=|==|<|>)
        \s*(?P<number>\d+(?:\.\d+)?|\.\d+)
        \s*(?P<unit>\S*)\s*""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """One parsed gate, its limit already in the metric's canonical unit.

    Attributes:
        source: The text it was parsed from, kept for reports.
        metric: The canonical metric name, one of `METRICS`.
        op: The comparison, one of ``<``, ``<=``, ``>``, ``>=``, ``==``.
        limit: The limit in the metric's canonical unit (ms, fraction, req/s or count).
        name: The request name the gate is scoped to, or None for the whole run.

    """

    source: str
    metric: str
    op: str
    limit: float
    name: str | None = None

    @property
    def label(self) -> str:
        """The metric with its scope, as reports show it: ``p99`` or ``p99{name="GET /"}``."""
        return self.metric if self.name is None else f'{self.metric}{{name="{self.name}"}}'

    def check(self, actual: float) -> bool:
        """Whether `actual`, in canonical units, meets the limit; NaN never does."""
        return _OPERATORS[self.op](actual, self.limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdResult:
    """The outcome of one threshold against one run.

    Attributes:
        threshold: The gate that was checked.
        passed: True only if the metric was measured and met the limit.
        actual: The measured value in canonical units, or None if the run did not report it.
        message: One line for humans, e.g. ``p99 = 63.2 ms, limit < 50 ms: FAILED``.

    """

    threshold: Threshold
    passed: bool
    actual: float | None
    message: str


def parse_threshold(text: str) -> Threshold:
    """Parse one gate such as ``p99<50ms``, ``errors <= 0.1%`` or ``p95{name="GET /products"}<0.2s``.

    Args:
        text: The threshold as written in a config file or on the command line.

    Returns:
        The threshold, with its limit converted to the metric's canonical unit.

    Raises:
        ConfigurationError: The text is malformed, names an unknown metric, or gives a unit the metric cannot take.

    """
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        msg = (
            f'Cannot parse threshold {text!r}; write METRIC[{{name="..."}}] OP NUMBER[UNIT], '
            f"as in 'p99<50ms' or 'errors<0.1%'. {_KNOWN}"
        )
        raise ConfigurationError(msg)
    metric, name, unit = match["metric"].lower(), match["name"], match["unit"]
    kind = _KINDS.get(metric)
    if kind is None:
        msg = f"Threshold {text!r} names the unknown metric {match['metric']!r}. {_KNOWN}"
        raise ConfigurationError(msg)
    factor = kind.units.get(unit)
    if factor is None:
        given = f"the unit {unit!r}" if unit else "no unit"
        msg = f"Threshold {text!r} gives {metric} {given}, but {metric} takes {kind.accepted}. {_KNOWN}"
        raise ConfigurationError(msg)
    limit = Decimal(match["number"]) * factor
    if kind is _FRACTION and limit > 1:
        msg = f"Threshold {text!r} asks for {metric} above 100%; a plain number is a fraction, so write 5% or 0.05."
        raise ConfigurationError(msg)
    if name is not None and not name.strip():
        msg = f'Threshold {text!r} has an empty request name; write {{name="GET /products"}} or drop the braces.'
        raise ConfigurationError(msg)
    return Threshold(source=text.strip(), metric=metric, op=match["op"], limit=float(limit), name=name)


def evaluate(
    thresholds: Iterable[Threshold],
    metrics: Mapping[str, float],
    *,
    by_name: Mapping[str, Mapping[str, float]] | None = None,
) -> list[ThresholdResult]:
    """Check every threshold against a run's metrics.

    Args:
        thresholds: Parsed gates, checked in order.
        metrics: The whole run's metrics by canonical name and in canonical units (see the module docstring).
        by_name: Metrics per request name, for scoped thresholds; same names and units as `metrics`.

    Returns:
        One result per threshold, in order. A metric the run did not report fails its threshold.

    """
    return [_evaluate_one(threshold, metrics, by_name or {}) for threshold in thresholds]


def _evaluate_one(
    threshold: Threshold, metrics: Mapping[str, float], by_name: Mapping[str, Mapping[str, float]]
) -> ThresholdResult:
    show = _KINDS[threshold.metric].show
    limit = f"limit {threshold.op} {show(threshold.limit)}"
    scope = metrics if threshold.name is None else by_name.get(threshold.name)
    if scope is None:
        message = f"{threshold.label}: no requests named {threshold.name!r} were measured, {limit}: FAILED"
        return ThresholdResult(threshold=threshold, passed=False, actual=None, message=message)
    actual = scope.get(threshold.metric)
    if actual is None:
        message = f"{threshold.label} was not measured, {limit}: FAILED"
        return ThresholdResult(threshold=threshold, passed=False, actual=None, message=message)
    passed = threshold.check(actual)
    message = f"{threshold.label} = {show(actual)}, {limit}: {'passed' if passed else 'FAILED'}"
    return ThresholdResult(threshold=threshold, passed=passed, actual=actual, message=message)
