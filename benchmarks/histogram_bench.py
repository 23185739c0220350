"""Time one `record` call of overdrive's Histogram against the `hdrhistogram` package, in ns per value.

Run from the repository root::

    PYTHONPATH=src python benchmarks/histogram_bench.py

`hdrhistogram` is not a dependency; to compare, install it in a throwaway venv and add its site-packages to
PYTHONPATH (`PYTHONPATH=src:/tmp/hv/lib/python3.11/site-packages`); it is skipped when missing. The
values are lognormal latencies around 3 ms; each figure is the best of many interleaved rounds, since the loop is
short and the machine may be busy.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from overdrive.loadtest.histogram import Histogram

if TYPE_CHECKING:
    from collections.abc import Callable

ROUNDS = 30
VALUES = [int(random.Random(1).lognormvariate(8, 1)) for _ in range(20_000)]


def _loop(record: Callable[[int], object]) -> float:
    values = VALUES
    start = time.perf_counter_ns()
    for value in values:
        record(value)
    return (time.perf_counter_ns() - start) / len(values)


def _noop(value: int) -> None:
    pass


def main() -> None:
    """Print the best ns per call of each recorder; the empty-call row shows the share of the call and loop."""
    recorders: dict[str, Callable[[int], object]] = {
        "empty function call (floor)": _noop,
        "overdrive Histogram.record": Histogram(highest=3_600_000_000, significant_digits=2).record,
    }
    try:
        from hdrh.histogram import HdrHistogram  # type: ignore[import-not-found]  # noqa: PLC0415 - optional, never a dependency
    except ImportError:
        print("hdrhistogram is not installed; `pip install hdrhistogram` to compare.")
    else:
        recorders["hdrhistogram record_value"] = HdrHistogram(1, 3_600_000_000, 2).record_value
    best = dict.fromkeys(recorders, float("inf"))
    for _ in range(ROUNDS):
        for name, record in recorders.items():
            best[name] = min(best[name], _loop(record))
    for name, ns in best.items():
        print(f"{name:<32} {ns:7.1f} ns/record")


if __name__ == "__main__":
    main()
