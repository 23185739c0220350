"""Coordinated-omission self-test as a benchmark: one stall, three ways of measuring it.

A server answers in ~1 ms but stalls once for STALL seconds (`overdrive.loadtest.stallserver`, pinned to core 0).
Each generator (pinned to core 1) loads a fresh server for DURATION seconds:

- `overdrive load --rate R` (open model): latency from each request's intended send time;
- `overdrive load -c C` (closed model, like wrk), raw and with its after-the-fact correction (`corrected`);
- `wrk -c C` (closed model).

The analytic tail of an open-model run is known (see `expected_percentile`): requests arriving during the stall
wait uniformly between 0 and STALL. The table shows each generator's p50/p99/p99.9 beside it.

    python benchmarks/coordinated_omission.py --rounds 3

Results go to benchmarks/results/co-<UTC>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from overdrive.loadtest.stallserver import expected_percentile, running

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if match is None:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


def run_one(tool: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    pin = ["taskset", "-c", "1"]
    duration = f"{args.duration}s"
    if tool == "wrk":
        out = subprocess.run(
            [*pin, "wrk", "-t1", f"-c{args.connections}", f"-d{duration}", "--latency", url],
            capture_output=True, text=True, check=True, timeout=args.duration + 60,
        ).stdout  # fmt: skip
        return {"p50": _wrk_ms(out, "50%"), "p99": _wrk_ms(out, "99%"), "p99.9": float("nan")}
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "r.json"
        model = ["--rate", str(args.rate)] if tool == "overdrive open" else ["-c", str(args.connections)]
        command = [*pin, str(BIN / "overdrive"), "load", url, *model, "-d", duration, "--procs", "1", "--quiet"]
        subprocess.run([*command, "--json", str(result)], capture_output=True, check=True, timeout=args.duration + 60)
        document = json.loads(result.read_text())
    figures = {key: document["latency"]["percentiles"][key] for key in ("p50", "p99", "p99.9")}
    if document.get("corrected"):  # the closed model's after-the-fact estimate, from the same run
        figures.update(
            {f"corrected {key}": document["corrected"]["percentiles"][key] for key in ("p50", "p99", "p99.9")}
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--stall-after", type=float, default=3.0)
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    started = datetime.now(UTC)
    tools = ("overdrive open", "overdrive closed", "wrk")
    runs: list[dict[str, object]] = []
    for index in range(args.rounds):
        for tool in tools if index % 2 == 0 else tuple(reversed(tools)):
            with running(args.stall_after, args.stall, cpus=(0,)) as url:
                figures = run_one(tool, url, args)
            corrected = {k.removeprefix("corrected "): v for k, v in figures.items() if k.startswith("corrected ")}
            plain = {k: v for k, v in figures.items() if not k.startswith("corrected ")}
            runs.append({"round": index, "tool": tool, **plain})
            if corrected:
                runs.append({"round": index, "tool": f"{tool}, CO-corrected", **corrected})
            print(f"round {index + 1} {tool}: {figures}", flush=True)
    expected = {
        key: expected_percentile(p, stall_s=args.stall, duration_s=args.duration) * 1000
        for key, p in (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))
    }
    lines = [
        (
            f"`python benchmarks/coordinated_omission.py --rounds {args.rounds}` at {started:%Y-%m-%d %H:%M} UTC: "
            f"{args.duration} s runs, one {args.stall:g} s stall after {args.stall_after:g} s, "
            f"open model at {args.rate:g} req/s, closed models with {args.connections} connections."
        ),
        "",
        "| measured by | p50 ms | p99 ms | p99.9 ms |",
        "|---|---:|---:|---:|",
        f"| analytic (open model) | {expected['p50']:.1f} | {expected['p99']:.0f} | {expected['p99.9']:.0f} |",
    ]
    for tool in (*tools[:2], "overdrive closed, CO-corrected", *tools[2:]):
        mine = [r for r in runs if r["tool"] == tool]
        cells = [statistics.median(float(r[k]) for r in mine) for k in ("p50", "p99", "p99.9")]  # type: ignore[arg-type]
        lines.append(f"| {tool} (median of {len(mine)}) | {cells[0]:.2f} | {cells[1]:.1f} | {cells[2]:.1f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"co-{started:%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps({"args": vars(args), "expected": expected, "runs": runs}, indent=2))
    stem.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
