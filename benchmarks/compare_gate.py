"""How often `overdrive compare` cries wolf, and how often it catches a real 20% slowdown, on this machine.

Two steady servers (`overdrive.loadtest.stallserver` with no stall) run pinned to core 0: A answers after
`--service-ms` milliseconds, B after 20% longer. The load runs pinned to core 1. Each trial is one full
`overdrive compare` decision (interleaved runs, Mann-Whitney U at alpha 0.05 plus the 5% minimum effect):

- A/A trials compare A with itself: every "regression" verdict is a false positive (goal: at most 5%);
- A/B trials compare A with B: every "regression" verdict is a detection (goal: at least 90%).

A/A and A/B trials alternate, so machine drift touches both. Run from the repository root:

    python benchmarks/compare_gate.py --trials 20 --runs 8 --duration 0.4

Results go to benchmarks/results/compare-<UTC>.json, and a summary line is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from overdrive.loadtest.abtest import run_interleaved
from overdrive.loadtest.runner import LoadOptions
from overdrive.loadtest.scenario import Scenario
from overdrive.loadtest.stallserver import running

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials of each kind")
    parser.add_argument("--runs", type=int, default=8, help="runs per side in each trial")
    parser.add_argument("--duration", type=float, default=0.4, help="seconds per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--service-ms", type=float, default=5.0)
    parser.add_argument("--slowdown", type=float, default=0.2)
    parser.add_argument("--metric", default="p50")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    options = LoadOptions(connections=args.connections, duration_s=args.duration, procs=1, cpus=(1,))
    started = datetime.now(UTC)
    trials: list[dict[str, object]] = []
    with (
        running(1e9, 0, service_ms=args.service_ms, cpus=(0,)) as url_a,
        running(1e9, 0, service_ms=args.service_ms * (1 + args.slowdown), cpus=(0,)) as url_b,
    ):
        a, b = Scenario.single(url_a), Scenario.single(url_b)
        for index in range(args.trials):
            for kind, other in (("A/A", a), ("A/B", b)) if index % 2 == 0 else (("A/B", b), ("A/A", a)):
                t0 = time.perf_counter()
                outcome = run_interleaved(a, other, options, runs=args.runs, metric=args.metric)
                verdict = outcome.comparison
                trials.append(
                    {
                        "kind": kind,
                        "verdict": verdict.verdict,
                        "p_value": verdict.p_value,
                        "relative_change": verdict.relative_change,
                        "samples_a": outcome.samples_a,
                        "samples_b": outcome.samples_b,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                print(f"trial {index + 1}/{args.trials} {kind}: {verdict.verdict} "
                      f"({verdict.relative_change:+.1%}, p={verdict.p_value:.3g})", flush=True)  # fmt: skip
    aa = [t for t in trials if t["kind"] == "A/A"]
    ab = [t for t in trials if t["kind"] == "A/B"]
    false_positive = sum(t["verdict"] == "regression" for t in aa) / len(aa)
    power = sum(t["verdict"] == "regression" for t in ab) / len(ab)
    summary = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "args": vars(args),
        "false_positive_rate": false_positive,
        "detection_rate": power,
        "trials": trials,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"compare-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"A/A false positives: {false_positive:.1%} of {len(aa)}; 20% slowdown detected: {power:.1%} of {len(ab)}")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
