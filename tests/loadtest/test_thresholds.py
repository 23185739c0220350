"""Threshold gates: every written form parses to canonical units, bad text is refused, and evaluation never passes
a metric it did not see."""

from __future__ import annotations

import math

import pytest

from overdrive.exceptions import ConfigurationError
from overdrive.loadtest.thresholds import METRICS, Threshold, evaluate, parse_threshold


class TestParse:
    @pytest.mark.parametrize(
        ("text", "metric", "op", "limit"),
        [
            ("p99<50ms", "p99", "<", 50.0),
            ("p95 <= 0.2s", "p95", "<=", 200.0),
            ("errors<0.1%", "errors", "<", 0.001),
            ("rps>=1000", "rps", ">=", 1000.0),
            ("p99.9<250ms", "p99.9", "<", 250.0),
            ("p99.99 < 1.5s", "p99.99", "<", 1500.0),
            ("mean<20ms", "mean", "<", 20.0),
            ("max<2s", "max", "<", 2000.0),
            ("dropped==0", "dropped", "==", 0.0),
            ("late<1%", "late", "<", 0.01),
            ("p50>.5ms", "p50", ">", 0.5),
            ("p90<250us", "p90", "<", 0.25),
            ("p90<250\u00b5s", "p90", "<", 0.25),
            ("p90<250\u03bcs", "p90", "<", 0.25),
            ("errors<0.05", "errors", "<", 0.05),
            ("  P99  <  50 ms  ", "p99", "<", 50.0),
        ],
    )
    def test_forms_convert_to_canonical_units(self, text: str, metric: str, op: str, limit: float) -> None:
        """Each written form yields the canonical metric, the operator, and the limit in ms or as a fraction."""
        threshold = parse_threshold(text)
        assert (threshold.metric, threshold.op, threshold.name) == (metric, op, None)
        assert threshold.limit == pytest.approx(limit, rel=1e-12)
        assert threshold.source == text.strip()

    def test_decimal_conversion_is_exact(self) -> None:
        """Percentages and seconds convert without binary float drift (0.1% is exactly the float 0.001)."""
        assert parse_threshold("errors<0.1%").limit == 0.001
        assert parse_threshold("p95<0.2s").limit == 200.0

    def test_scope_by_request_name(self) -> None:
        """The braces scope a gate to one request name, which may contain colons and spaces."""
        threshold = parse_threshold('p99{name="GET /items/:id"} < 100ms')
        assert threshold == Threshold(
            source='p99{name="GET /items/:id"} < 100ms', metric="p99", op="<", limit=100.0, name="GET /items/:id"
        )
        assert threshold.label == 'p99{name="GET /items/:id"}'

    def test_every_listed_metric_parses(self) -> None:
        """Each name in METRICS is accepted with a unit its family takes."""
        units = {"errors": "%", "late": "%", "rps": "", "dropped": ""}
        for metric in METRICS:
            assert parse_threshold(f"{metric}<1{units.get(metric, 'ms')}").metric == metric


class TestParseErrors:
    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("p98<50ms", "unknown metric 'p98'"),
            ("latency<50ms", "unknown metric 'latency'"),
            ("errors<5ms", "gives errors the unit 'ms', but errors takes a percentage"),
            ("p99<50", "gives p99 no unit, but p99 takes a latency unit"),
            ("p99<5%", "gives p99 the unit '%'"),
            ("p99<5min", "gives p99 the unit 'min'"),
            ("rps>=1000ms", "gives rps the unit 'ms'"),
            ("dropped==0%", "gives dropped the unit '%'"),
            ("errors<5", "above 100%"),
            ("late<150%", "above 100%"),
            ("", "Cannot parse threshold ''"),
            ("p99", "Cannot parse"),
            ("p99<", "Cannot parse"),
            ("p99 < -5ms", "Cannot parse"),
            ("p99=50ms", "Cannot parse"),
            ("p99!=50ms", "Cannot parse"),
            ("p99<50ms and more", "Cannot parse"),
            ("<50ms", "Cannot parse"),
            ('p99{route="/"}<50ms', "Cannot parse"),
            ("GET /products: p99<100ms", "Cannot parse"),
            ('p99{name=""}<50ms', "empty request name"),
        ],
    )
    def test_refused_with_a_sentence_listing_known_metrics(self, text: str, fragment: str) -> None:
        """Unknown metrics, impossible units and malformed text raise ConfigurationError; the fraction and empty-name
        messages explain the fix, the others list the known metrics."""
        with pytest.raises(ConfigurationError) as caught:
            parse_threshold(text)
        message = str(caught.value)
        assert fragment in message
        assert message.endswith(".")
        if "above 100%" not in message and "empty" not in message:
            known = (
                "Known metrics: p50, p90, p95, p99, p99.9, p99.99, mean, max, corrected_p50, corrected_p90, "
                "corrected_p95, corrected_p99, corrected_p99.9, corrected_p99.99, errors, late, rps, dropped."
            )
            assert known in message

    def test_configuration_error_is_a_value_error(self) -> None:
        """Callers that only know builtins can catch ValueError."""
        with pytest.raises(ValueError, match="unknown metric"):
            parse_threshold("p42<1ms")


def _check(text: str, **metrics: float) -> tuple[bool, float | None, str]:
    (result,) = evaluate([parse_threshold(text)], metrics)
    return result.passed, result.actual, result.message


class TestEvaluate:
    def test_failure_message(self) -> None:
        """A failed latency gate reads as value, limit and verdict, in milliseconds."""
        assert _check("p99<50ms", p99=63.2) == (False, 63.2, "p99 = 63.2 ms, limit < 50 ms: FAILED")

    def test_pass_message_converts_units_for_display(self) -> None:
        """Limits written in seconds are shown in ms; rates are shown as percentages."""
        assert _check("p95 <= 0.2s", p95=180.0) == (True, 180.0, "p95 = 180 ms, limit <= 200 ms: passed")
        assert _check("errors<0.1%", errors=0.0035) == (False, 0.0035, "errors = 0.35%, limit < 0.1%: FAILED")
        assert _check("rps>=1000", rps=1250.5)[2] == "rps = 1250.5 req/s, limit >= 1000 req/s: passed"
        assert _check("dropped==0", dropped=0.0)[2] == "dropped = 0, limit == 0: passed"

    @pytest.mark.parametrize(
        ("text", "value", "passed"),
        [
            ("p99<50ms", 50.0, False),
            ("p99<=50ms", 50.0, True),
            ("rps>1000", 1000.0, False),
            ("rps>=1000", 1000.0, True),
            ("dropped==0", 1.0, False),
            ("late<1%", 0.0099, True),
        ],
    )
    def test_boundaries(self, text: str, value: float, passed: bool) -> None:
        """Strict and inclusive comparisons differ exactly at the limit."""
        metric = parse_threshold(text).metric
        assert _check(text, **{metric: value})[0] is passed

    def test_missing_metric_fails(self) -> None:
        """A metric the run did not report fails its gate rather than passing silently."""
        assert _check("p99.99<1s", p99=3.0) == (False, None, "p99.99 was not measured, limit < 1000 ms: FAILED")

    @pytest.mark.parametrize("text", ["p99<50ms", "p99>50ms", "p99==50ms", "p99>=0ms"])
    def test_nan_fails_every_comparison(self, text: str) -> None:
        """A NaN measurement never meets a limit, whatever the operator."""
        assert _check(text, p99=math.nan)[0] is False

    def test_scoped_gates_read_by_name(self) -> None:
        """A scoped gate uses its request name's metrics, not the run's; a name never measured fails."""
        thresholds = [
            parse_threshold(t) for t in ('p99{name="GET /products"}<100ms', "p99<50ms", 'p99{name="POST /"}<1s')
        ]
        results = evaluate(thresholds, {"p99": 40.0}, by_name={"GET /products": {"p99": 120.0}})
        assert [r.passed for r in results] == [False, True, False]
        assert results[0].message == 'p99{name="GET /products"} = 120 ms, limit < 100 ms: FAILED'
        assert results[2].actual is None
        assert "no requests named 'POST /' were measured" in results[2].message

    def test_scoped_gate_without_by_name_fails(self) -> None:
        """Leaving out by_name makes scoped gates fail, not pass."""
        (result,) = evaluate([parse_threshold('mean{name="GET /"}<1ms')], {"mean": 0.5})
        assert result.passed is False

    def test_results_keep_order_and_threshold(self) -> None:
        """One result per threshold, in order, each carrying the threshold it judged."""
        thresholds = [parse_threshold(t) for t in ("p50<1ms", "p50<2ms", "p50<3ms")]
        results = evaluate(thresholds, {"p50": 1.5})
        assert [r.threshold for r in results] == thresholds
        assert [r.passed for r in results] == [False, True, True]


def test_corrected_percentiles_parse_as_latencies() -> None:
    threshold = parse_threshold("corrected_p99.9<250ms")
    assert (threshold.metric, threshold.limit) == ("corrected_p99.9", 250.0)
    assert "corrected_p99" in METRICS
