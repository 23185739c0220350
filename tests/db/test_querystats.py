"""Per-fingerprint statistics: percentiles within bucket resolution, bounded store, ranking."""

from __future__ import annotations

import random

import pytest

from overdrive.db import Fingerprint, QueryStore


def test_percentiles_are_within_the_bucket_resolution() -> None:
    store = QueryStore()
    stats, new = store.stats_for(Fingerprint.of("SELECT 1"))
    assert new
    rng = random.Random(3)
    samples = sorted(rng.lognormvariate(-7, 1.2) for _ in range(20_000))
    for seconds in samples:
        stats.record(seconds, "SELECT 1", (), -1)
    for fraction in (0.5, 0.95, 0.99):
        exact = samples[int(fraction * len(samples)) - 1]
        assert stats.percentile(fraction) == pytest.approx(exact, rel=0.10)
    assert stats.count == len(samples)
    assert stats.mean_s == pytest.approx(sum(samples) / len(samples))
    assert stats.max_s == samples[-1]
    assert stats.percentile(1.0) == pytest.approx(samples[-1], rel=0.10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.percentile(1.5)


def test_extremes_and_the_slowest_example_are_kept() -> None:
    store = QueryStore()
    stats, _ = store.stats_for(Fingerprint.of("SELECT ?"))
    assert stats.percentile(0.5) == 0.0
    stats.record(1e-7, "SELECT 1", (1,), 1)
    stats.record(9000.0, "SELECT 2", (2,), 4)
    stats.record(0.5, "SELECT 3", (3,), -1)
    assert stats.example_statement == "SELECT 2"
    assert stats.rows == 5
    assert stats.percentile(0.01) == pytest.approx(0.5e-6)
    assert stats.percentile(1.0) == 9000.0
    snapshot = stats.snapshot()
    assert snapshot.example == {"statement": "SELECT 2", "parameters": [2]}
    assert snapshot.max_ms == 9_000_000.0


def test_the_store_evicts_the_least_used_tenth_when_full() -> None:
    store = QueryStore(max_fingerprints=20)
    for n in range(20):
        stats, _ = store.stats_for(Fingerprint.of(f"SELECT c{n} FROM t"))
        for _ in range(n + 1):
            stats.record(0.001, "x", None, -1)
    store.stats_for(Fingerprint.of("SELECT newcomer FROM t"))
    assert len(store) == 19
    assert store.evicted == 2
    kept = {s.fingerprint.normalized for s in store.top()}
    assert "SELECT c0 FROM t" not in kept
    assert "SELECT c1 FROM t" not in kept
    assert "SELECT c19 FROM t" in kept
    assert [s.count for s in store.top(3, by="count")] == [20, 19, 18]
    with pytest.raises(ValueError, match="rank"):
        store.top(by="loudest")
    with pytest.raises(ValueError, match="at least 1"):
        QueryStore(max_fingerprints=0)
    store.clear()
    assert len(store) == 0


def test_example_parameters_are_bounded_and_json_friendly() -> None:
    store = QueryStore()
    stats, _ = store.stats_for(Fingerprint.of("INSERT"))
    stats.record(0.1, "INSERT", {"blob": b"x" * 5000, "n": 1, "none": None}, 1)
    example = stats.snapshot().example["parameters"]
    assert example["n"] == 1
    assert example["none"] is None
    assert len(example["blob"]) <= 2003
    assert example["blob"].endswith("...")
