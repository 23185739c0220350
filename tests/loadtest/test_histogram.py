"""The latency histogram: the 1% accuracy bound, exact merge and serialization, clamping, and constant memory."""

from __future__ import annotations

import math
import random
import statistics
from fractions import Fraction

import orjson
import pytest

from overdrive.loadtest.histogram import Histogram, TimeSeries

PERCENTILES = [0, 50, 90, 99, 99.9, 99.99, 100]
HOUR = 3_600_000_000


def _uniform(rng: random.Random, n: int) -> list[int]:
    return [rng.randint(1, 2_000_000) for _ in range(n)]


def _lognormal(rng: random.Random, n: int) -> list[int]:
    return [int(rng.lognormvariate(8, 1.5)) for _ in range(n)]


def _bimodal_with_stall(rng: random.Random, n: int) -> list[int]:
    """Fast responses around 2 ms, plus the 1% of requests caught behind a 1-second stall."""
    return [int(rng.gauss(2_000, 300)) if rng.random() < 0.99 else 1_000_000 + rng.randint(0, 20_000) for _ in range(n)]


def _exact(ordered: list[int], p: float) -> int:
    """The nearest-rank percentile, with the rank computed exactly from the decimal percentile."""
    rank = max(1, math.ceil(Fraction(str(p)) * len(ordered) / 100))
    return ordered[rank - 1]


def _filled(values: list[int], **config: int) -> Histogram:
    hist = Histogram(**config)
    record = hist.record
    for value in values:
        record(value)
    return hist


class TestAccuracy:
    @pytest.mark.parametrize(
        ("distribution", "n", "seed"),
        [(_uniform, 200_000, 1), (_lognormal, 1_000_000, 2), (_bimodal_with_stall, 300_000, 3)],
    )
    def test_percentiles_are_within_one_percent_above_the_exact_nearest_rank(
        self, distribution: object, n: int, seed: int
    ) -> None:
        """Every reported percentile x' of exact x satisfies x <= x' < 1.01 x, on 10^5..10^6 random values."""
        assert callable(distribution)
        values: list[int] = [max(1, v) for v in distribution(random.Random(seed), n)]
        hist = _filled(values)
        ordered = sorted(values)
        got = hist.percentiles(PERCENTILES)
        for p in PERCENTILES:
            exact = _exact(ordered, p)
            assert exact <= got[p] < exact * 1.01, (p, exact, got[p])
            assert hist.value_at_percentile(p) == got[p]
        assert (got[0], got[100]) == (ordered[0], ordered[-1])
        assert hist.count == n

    @pytest.mark.parametrize("digits", [1, 2, 3, 4])
    def test_every_bucket_is_narrower_than_the_bound_and_buckets_tile_the_range(self, digits: int) -> None:
        """The proof of the bound: buckets are contiguous, record() files both ends of each bucket in it, and
        a bucket's width is below 10**-digits of its lowest value, so its highest value is within that of any."""
        highest = HOUR if digits <= 2 else 10**7
        hist = Histogram(highest=highest, significant_digits=digits)
        expected_next = 1  # bucket 0 would hold zero, which counts as lowest
        for index in range(1, len(hist._counts)):
            lo, hi = hist._bounds(index)
            assert lo == expected_next
            assert hi - lo < lo * 10**-digits or hi == lo
            hist.record(lo)
            hist.record(min(hi, highest))
            expected_next = hi + 1
        assert expected_next > highest
        assert set(hist._counts[1:]) == {2}
        assert hist.clamped == 0

    def test_mean_and_stdev_are_close_to_the_exact_ones(self) -> None:
        values = _lognormal(random.Random(4), 100_000)
        hist = _filled(values)
        assert hist.mean == pytest.approx(statistics.fmean(values), rel=0.004)
        assert hist.stdev == pytest.approx(statistics.pstdev(values), rel=0.01)

    def test_percentiles_outside_0_to_100_are_refused(self) -> None:
        with pytest.raises(ValueError, match=r"between 0 and 100"):
            Histogram().value_at_percentile(100.5)


class TestCurve:
    def test_the_curve_rises_gets_denser_towards_the_tail_and_ends_at_the_max(self) -> None:
        hist = _filled(_lognormal(random.Random(5), 100_000))
        curve = hist.percentile_curve()
        ps = [p for p, _ in curve]
        values = [v for _, v in curve]
        assert ps == sorted(ps)
        assert values == sorted(values)
        assert curve[0] == (0.0, hist.min)
        assert curve[-1] == (100.0, hist.max)
        assert any(99.99 < p < 100 for p in ps)
        assert ps[1] - ps[0] > ps[-2] - ps[-3]


class TestMerge:
    def test_merged_halves_equal_one_histogram_of_all_values(self) -> None:
        values = [*_bimodal_with_stall(random.Random(6), 100_000), HOUR * 2]
        whole = _filled(values)
        left, right = _filled(values[::2]), _filled(values[1::2])
        left.merge(right)
        assert left.to_dict() == whole.to_dict()
        assert left.percentiles(PERCENTILES) == whole.percentiles(PERCENTILES)

    def test_histograms_of_different_configurations_do_not_merge(self) -> None:
        with pytest.raises(ValueError, match=r"^Cannot merge histograms of different configurations: .*\.$"):
            Histogram().merge(Histogram(significant_digits=3))

    def test_copy_is_independent_and_reset_empties_while_the_bound_record_keeps_working(self) -> None:
        hist = _filled([5, 500, 5_000])
        record = hist.record
        twin = hist.copy()
        hist.reset()
        assert (hist.count, hist.min, hist.max, twin.count, twin.max) == (0, 0, 0, 3, 5_000)
        record(7)
        assert (hist.count, hist.min, hist.max) == (1, 7, 7)


class TestTally:
    def test_a_tally_counts_exactly_as_the_records_it_stands_for(self) -> None:
        values = [0, 0, 3, *_lognormal(random.Random(4), 5_000)]  # zeros and values above `highest` included
        tally = [0] * (max(values) + 1)
        for value in values:
            tally[value] += 1
        tallied = Histogram(lowest=2, highest=20_000)
        assert tallied.record_tally(tally) == len(values)
        recorded = _filled(values, lowest=2, highest=20_000)
        assert recorded.clamped > 0
        assert tallied.to_dict() == recorded.to_dict()
        assert tallied.record_tally([0] * 10) == 0


class TestSerialization:
    def test_a_json_round_trip_is_exact_and_compact(self) -> None:
        rng = random.Random(7)
        hist = _filled([int(10 ** rng.uniform(0, 9)) for _ in range(100_000)] + [0, HOUR + 1])
        data = hist.to_bytes()
        buckets = len(hist.to_dict()["buckets"])
        assert buckets > 2_000
        assert len(data) < 14 * buckets
        again = Histogram.from_bytes(data)
        assert again.to_dict() == hist.to_dict()
        assert Histogram.from_dict(orjson.loads(orjson.dumps(hist.to_dict()))).to_dict() == hist.to_dict()

    def test_an_empty_histogram_round_trips(self) -> None:
        again = Histogram.from_bytes(Histogram().to_bytes())
        assert again.to_dict() == Histogram().to_dict()
        again.record(3)
        assert again.min == 3

    def test_corrupt_data_is_refused(self) -> None:
        data = _filled([10, 20]).to_dict()
        with pytest.raises(ValueError, match=r"^The buckets hold 2 values, but the histogram says it holds 3\.$"):
            Histogram.from_dict({**data, "count": 3})
        with pytest.raises(ValueError, match=r"does not fit"):
            Histogram.from_dict({**data, "buckets": [[10**6, 1]]})


class TestRange:
    def test_values_above_the_range_are_clamped_and_counted(self) -> None:
        hist = _filled([100, 1_001, 10**9], highest=1_000)
        assert (hist.count, hist.clamped, hist.max) == (3, 2, 1_000)
        assert hist.value_at_percentile(100) == 1_000

    def test_values_below_lowest_count_as_lowest(self) -> None:
        hist = _filled([0, -5, 40], lowest=2)
        assert (hist.count, hist.min, hist.clamped) == (3, 2, 0)
        assert hist.value_at_percentile(50) == 2

    def test_an_empty_histogram_answers_zero_without_raising(self) -> None:
        hist = Histogram()
        assert (hist.count, hist.min, hist.max, hist.mean, hist.stdev) == (0, 0, 0, 0.0, 0.0)
        assert hist.value_at_percentile(99) == 0
        assert hist.percentiles([50, 100]) == {50: 0, 100: 0}
        assert hist.percentile_curve() == []

    def test_memory_is_constant_whatever_the_number_of_records(self) -> None:
        hist = Histogram()
        size = len(hist._counts)
        rng = random.Random(8)
        for _ in range(1_000_000):
            hist.record(int(rng.expovariate(1e-4)))
        assert len(hist._counts) == size < 4_000

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ({"lowest": 10, "highest": 5}, r"^The range must satisfy 1 <= lowest <= highest, .*\.$"),
            ({"lowest": 0}, r"^The range must satisfy"),
            ({"significant_digits": 0}, r"^significant_digits must be between 1 and 4, not 0\.$"),
            ({"significant_digits": 5}, r"^significant_digits must be between 1 and 4, not 5\.$"),
        ],
    )
    def test_a_bad_configuration_is_a_value_error_with_a_full_sentence(
        self, config: dict[str, int], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            Histogram(**config)


class TestTimeSeries:
    def test_each_second_keeps_its_own_values_and_the_total_holds_them_all(self) -> None:
        series = TimeSeries()
        record = series.current.record
        for second in range(3):
            for value in range(1, 101):
                record(value * (second + 1))
            series.roll()
        assert len(series) == 3
        assert [series.second(i).max for i in range(3)] == [100, 200, 300]
        assert series.second(-1).count == 100
        assert series.total.count == 300
        assert series.total.value_at_percentile(100) == 300
        assert series.current.count == 0


class TestCoordinatedOmissionCorrection:
    def test_a_stall_becomes_the_tail_the_missing_requests_would_have_seen(self) -> None:
        histogram = Histogram()
        for _ in range(1000):
            histogram.record(1000)
        histogram.record(1_000_000)
        corrected = histogram.corrected(1000)
        exact = sorted([1000] * 1000 + [1_000_000] + [1_000_000 - k * 1000 for k in range(1, 1000)])
        assert corrected.count == len(exact)
        for p in (50, 90, 99, 99.9):
            want = exact[math.ceil(p / 100 * len(exact)) - 1]
            assert want <= corrected.value_at_percentile(p) <= want * 1.01, p
        assert (corrected.min, corrected.max) == (1000, 1_000_000)
        assert histogram.count == 1001  # the original is left alone

    def test_values_within_one_interval_and_a_zero_interval_change_nothing(self) -> None:
        histogram = Histogram()
        for value in (10, 500, 999, 1000):
            histogram.record(value)
        assert histogram.corrected(1000).count == 4
        assert histogram.corrected(0).count == 4
        assert histogram.corrected(1000).percentiles([50, 100]) == histogram.percentiles([50, 100])

    def test_a_small_interval_adds_many_values_without_a_loop_per_value(self) -> None:
        histogram = Histogram()
        histogram.record(3_000_000)  # a 3 s stall at a 10 µs interval: 299,999 synthetic values
        corrected = histogram.corrected(10)
        assert corrected.count == 300_000
        assert corrected.value_at_percentile(50) == pytest.approx(1_500_000, rel=0.01)
