"""The demo's result model: nearest-rank percentiles and the JSON round trip."""

from __future__ import annotations

import orjson
import pytest

from overdrive.demo.results import DemoResult, EndpointResult, LatencySummary, ProfileResult, summarize


class TestSummarize:
    def test_empty_list_is_all_zero(self) -> None:
        """An empty list summarises to zeros rather than raising."""
        assert summarize([]) == LatencySummary(count=0, mean=0.0, p50=0.0, p90=0.0, p95=0.0, p99=0.0, p999=0.0, max=0.0)

    def test_single_value_is_every_percentile(self) -> None:
        """With one latency, every percentile is that latency."""
        summary = summarize([7.0])
        assert (summary.p50, summary.p99, summary.p999, summary.max, summary.mean) == (7.0,) * 5

    def test_one_to_ten(self) -> None:
        """Nearest rank on 1..10 picks the ceil(p/100 * n)-th smallest value."""
        summary = summarize([float(v) for v in range(10, 0, -1)])
        assert (summary.p50, summary.p90, summary.p95, summary.p99, summary.p999) == (5, 9, 10, 10, 10)
        assert summary.count == 10
        assert summary.mean == pytest.approx(5.5)

    def test_one_to_hundred(self) -> None:
        """On 1..100 the p-th percentile is p itself, with no off-by-one from float rounding."""
        summary = summarize([float(v) for v in range(1, 101)])
        assert (summary.p50, summary.p90, summary.p95, summary.p99, summary.max) == (50, 90, 95, 99, 100)
        assert summary.p999 == 100

    def test_one_to_thousand(self) -> None:
        """p99.9 of 1..1000 is the 999th value."""
        summary = summarize([float(v) for v in range(1, 1001)])
        assert summary.p999 == 999

    def test_four_values(self) -> None:
        """With n=4 the median is the 2nd value and high percentiles the last."""
        summary = summarize([40.0, 10.0, 30.0, 20.0])
        assert (summary.p50, summary.p90, summary.p95) == (20.0, 40.0, 40.0)


def _result() -> DemoResult:
    latency = summarize([1.0, 2.0, 3.0])
    endpoint = EndpointResult(
        name="GET /products",
        requests=3,
        errors=1,
        throughput=1.5,
        latency=latency,
        queries_per_request=2.0,
        statuses={"200": 2, "500": 1},
    )
    profile = ProfileResult(
        profile="naive",
        duration_s=2.0,
        requests=3,
        errors=1,
        throughput=1.5,
        latency=latency,
        queries_per_request=None,
        endpoints=[endpoint],
        timeline=[(0.0, 1.0, 2.0), (1.0, 2.0, 3.0)],
    )
    return DemoResult(
        started_at="2024-05-01T12:00:00Z",
        server="uvicorn",
        driver="httpx",
        database="sqlite",
        scale=0.1,
        concurrency=8,
        duration_s=2.0,
        cpus=4,
        python="3.11.7",
        profiles=[profile],
    )


class TestJSON:
    def test_round_trip(self) -> None:
        """A result written by to_json reads back equal, nested dataclasses and timeline tuples included."""
        original = _result()
        assert DemoResult.from_json(original.to_json()) == original

    def test_round_trip_from_str(self) -> None:
        """from_json also accepts the JSON as text."""
        original = _result()
        assert DemoResult.from_json(original.to_json().decode()) == original

    def test_error_rate(self) -> None:
        """Error rates divide by requests and are zero when nothing ran."""
        result = _result()
        assert result.profiles[0].error_rate == pytest.approx(1 / 3)
        assert result.profiles[0].endpoints[0].error_rate == pytest.approx(1 / 3)

    def test_ratios_against_the_first_profile_are_written(self) -> None:
        """The JSON carries each profile's figures divided by the first's, None where the base is unknown."""
        result = _result()
        naive = result.profiles[0]
        faster = ProfileResult(
            **{
                **naive.__dict__,
                "profile": "database",
                "throughput": 6.0,
                "latency": summarize([0.5, 1.0, 1.5]),
                "queries_per_request": 0.5,
            }
        )
        written = orjson.loads(DemoResult(**{**result.__dict__, "profiles": [naive, faster]}).to_json())
        assert written["baseline"] == "naive"
        assert written["ratios"]["naive"] == dict.fromkeys(("throughput", "p50", "p95", "p99"), 1.0) | {
            "queries_per_request": None
        }
        assert written["ratios"]["database"] == {
            "throughput": 4.0, "p50": 0.5, "p95": 0.5, "p99": 0.5, "queries_per_request": None,
        }  # fmt: skip
