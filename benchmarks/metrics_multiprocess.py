"""Scrape time with several worker processes: fresh, and after 1,000 worker restarts, against prometheus_client.

Three variants, each in its own process (prometheus_client picks its multiprocess mode at import):

- ``overdrive``: `RequestMetrics(multiprocess_dir=...)`; half the restarted workers exit gracefully (`close`), half
  die without closing (``os._exit`` after their last publication, as under kill -9).
- ``prometheus``: prometheus_client multiprocess mode (a Histogram and a livesum Gauge, the same labels and buckets),
  a new `CollectorRegistry` + `MultiProcessCollector` per scrape as its docs show; dead workers are not cleaned up.
- ``prometheus-cleanup``: the same, calling `multiprocess.mark_process_dead(pid)` for every exited worker.

Each variant: the scraping process and one long-lived forked worker serve the same traffic (20 routes, 2 status
classes, 200 requests each); the median of `--scrapes` scrapes is timed ("fresh"); then `--restarts` workers are
forked one after another, each serves the traffic and exits; then the first scrape and the median of `--scrapes`
more are timed ("after"). Variants run in `--rounds` interleaved rounds (order reversed every other round), pinned
to `--cpu`; the report gives medians over rounds. It also times recording (``started`` + ``finished``) with and
without the publisher thread (interleaved), and one publication (snapshot, encode, atomic write).

Run from the repository root (the dev venv has prometheus_client)::

    .venv/bin/python benchmarks/metrics_multiprocess.py --rounds 3            # about 2 minutes
    .venv/bin/python benchmarks/metrics_multiprocess.py --rounds 1 --restarts 100 --scrapes 20   # smoke test

Results go to `benchmarks/results/metrics_multiprocess-<UTC>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest, multiprocess

from overdrive.observability import RequestMetrics, SharedMetricsStore

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
VARIANTS = ("overdrive", "prometheus", "prometheus-cleanup")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_rng = random.Random(7)
TRAFFIC = [(f"/route{_rng.randrange(20)}", _rng.choice((200, 200, 200, 404)), _rng.expovariate(40)) for _ in range(200)]


def _timed(call: Callable[[], object], times: int, budget_s: float = 30.0) -> list[float]:
    """`times` timings of `call`, or fewer (at least 5) once `budget_s` has passed."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(out) < times and (len(out) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def _fork(child: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    return pid


def _files(directory: str) -> int:
    return len(list(Path(directory).iterdir()))


def _wait(pid: int) -> None:
    os.waitpid(pid, 0)


def run_overdrive(directory: str, restarts: int, scrapes: int) -> dict[str, Any]:
    metrics = RequestMetrics(multiprocess_dir=directory, buckets=BUCKETS)

    def serve() -> None:
        for route, status, seconds in TRAFFIC:
            metrics.started("GET")
            metrics.finished("GET", route, status, seconds)

    def live_worker() -> None:
        serve()
        metrics.render()  # publish now
        time.sleep(3600)

    serve()
    live = _fork(live_worker)
    while len(list(Path(directory).glob("w-*.json"))) < 1:
        time.sleep(0.01)
    fresh = _timed(metrics.render, scrapes)
    files_fresh = _files(directory)

    def restarted(*, graceful: bool) -> Callable[[], None]:
        def child() -> None:
            serve()
            if graceful:
                metrics.close()
            else:
                metrics.render()  # its last publication; then it dies without closing

        return child

    started = time.perf_counter()
    for index in range(restarts):
        _wait(_fork(restarted(graceful=index % 2 == 0)))
    restart_s = time.perf_counter() - started
    files_before_scrape = _files(directory)
    first = _timed(metrics.render, 1)[0]
    after = _timed(metrics.render, scrapes)
    files_after = _files(directory)
    text = metrics.render()

    store = SharedMetricsStore(directory, buckets=BUCKETS)
    publish = _timed(lambda: store.write("w-bench", metrics.snapshot().encode()), 200)
    (Path(directory) / "w-bench.json").unlink()
    os.kill(live, 9)
    _wait(live)
    metrics.close()
    return {
        "fresh_ms": statistics.median(fresh) * 1e3,
        "first_after_ms": first * 1e3,
        "after_ms": statistics.median(after) * 1e3,
        "after_scrapes": len(after),
        "files_fresh": files_fresh,
        "files_before_first_scrape": files_before_scrape,
        "files_after": files_after,
        "restart_s": restart_s,
        "exposition_bytes": len(text),
        "requests_counted": _count(text),
        "publish_us": statistics.median(publish) * 1e6,
    }


def run_prometheus(directory: str, restarts: int, scrapes: int, *, cleanup: bool) -> dict[str, Any]:
    histogram = Histogram(
        "http_server_request_duration_seconds", "Request time.", ["method", "route", "status"], buckets=BUCKETS
    )
    in_flight = Gauge("http_server_requests_in_flight", "In flight.", ["method"], multiprocess_mode="livesum")

    def serve() -> None:
        for route, status, seconds in TRAFFIC:
            gauge = in_flight.labels("GET")
            gauge.inc()
            histogram.labels("GET", route, f"{status // 100}xx").observe(seconds)
            gauge.dec()

    def scrape() -> bytes:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)

    def live_worker() -> None:
        serve()
        time.sleep(3600)

    serve()
    live = _fork(live_worker)
    time.sleep(0.5)
    fresh = _timed(scrape, scrapes)
    files_fresh = _files(directory)
    started = time.perf_counter()
    for _ in range(restarts):
        pid = _fork(serve)
        _wait(pid)
        if cleanup:
            multiprocess.mark_process_dead(pid, directory)
    restart_s = time.perf_counter() - started
    files_before_scrape = _files(directory)
    first = _timed(scrape, 1)[0]
    after = _timed(scrape, scrapes)
    text = scrape().decode()
    os.kill(live, 9)
    _wait(live)
    return {
        "fresh_ms": statistics.median(fresh) * 1e3,
        "first_after_ms": first * 1e3,
        "after_ms": statistics.median(after) * 1e3,
        "after_scrapes": len(after),
        "files_fresh": files_fresh,
        "files_before_first_scrape": files_before_scrape,
        "files_after": _files(directory),
        "restart_s": restart_s,
        "exposition_bytes": len(text),
        "requests_counted": _count(text),
    }


def run_record(calls: int) -> dict[str, float]:
    """ns per started+finished: plain, and with a publisher thread at its default 1 s (15 rounds, order alternating)."""
    directory = tempfile.mkdtemp(prefix="odmp-record-", dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    registries = {"plain": RequestMetrics(), "shared": RequestMetrics(multiprocess_dir=directory)}
    results: dict[str, list[float]] = {name: [] for name in registries}
    for round_ in range(15):
        for name in sorted(registries, reverse=round_ % 2 == 1):
            started, finished = registries[name].started, registries[name].finished
            begin = time.perf_counter_ns()
            for route, status, seconds in TRAFFIC * (calls // len(TRAFFIC)):
                started("GET")
                finished("GET", route, status, seconds)
            results[name].append((time.perf_counter_ns() - begin) / calls)
    registries["shared"].close()
    shutil.rmtree(directory)
    return {name: statistics.median(values) for name, values in results.items()}


def _count(text: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_server_request_duration_seconds_count"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _child(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {args.cpu})
    if args.variant == "record":
        print(json.dumps(run_record(200_000)))
        return
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if args.variant == "overdrive":
        result = run_overdrive(directory, args.restarts, args.scrapes)
    else:
        result = run_prometheus(directory, args.restarts, args.scrapes, cleanup=args.variant == "prometheus-cleanup")
    print(json.dumps(result))


def _spawn(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix=f"odmp-{variant}-", dir=args.base)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, __file__, "--variant", variant, "--cpu", str(args.cpu)]
    command += ["--restarts", str(args.restarts), "--scrapes", str(args.scrapes)]
    try:
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _report(runs: dict[str, list[dict[str, Any]]], record: list[dict[str, float]], args: argparse.Namespace) -> str:
    where = args.base or "the temp dir"
    lines = [
        (
            f"Scrape time, {args.restarts} worker restarts, median of {args.scrapes} scrapes per run, median of "
            f"{args.rounds} interleaved rounds (pinned to CPU {args.cpu}; files in {where}; shared machine)."
        ),
        "",
        (
            "| variant | fresh (ms) | first scrape after (ms) | after (ms) | after / fresh | files fresh → after |"
            " counted | restarts (s) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        r = runs[variant]
        ratio = statistics.median(run["after_ms"] / run["fresh_ms"] for run in r)
        files = f"{int(_median(r, 'files_fresh'))} → {int(_median(r, 'files_after'))}"
        lines.append(
            f"| {variant} | {_median(r, 'fresh_ms'):.2f} | {_median(r, 'first_after_ms'):.1f} | "
            f"{_median(r, 'after_ms'):.2f} | {ratio:.2f}x | {files} | {int(_median(r, 'requests_counted'))} | "
            f"{_median(r, 'restart_s'):.1f} |"
        )
    ours = _median(runs["overdrive"], "after_ms")
    plain, shared = (statistics.median(r[name] for r in record) for name in ("plain", "shared"))
    lines += [
        "",
        (
            f"After the restarts, prometheus_client scrapes take {_median(runs['prometheus'], 'after_ms') / ours:.0f}x"
            f" ours without cleanup and {_median(runs['prometheus-cleanup'], 'after_ms') / ours:.0f}x with"
            " mark_process_dead."
        ),
        (
            "One publication (snapshot, encode, atomic write; once a second per worker): "
            f"{_median(runs['overdrive'], 'publish_us'):.0f} µs."
        ),
        f"Recording (started + finished), median: {plain:.0f} ns plain, {shared:.0f} ns with the publisher running.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=1_000)
    parser.add_argument("--scrapes", type=int, default=101)
    parser.add_argument("--cpu", type=int, default=1)
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # tmpfs, as recommended for either library
    parser.add_argument("--base", default=shm, help="where the metric directories go (default: /dev/shm)")
    parser.add_argument("--variant", choices=(*VARIANTS, "record"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        _child(args)
        return
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    record = []
    for round_ in range(args.rounds):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            runs[variant].append(_spawn(variant, args))
            print(f"round {round_ + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
        record.append(_spawn("record", args))
    report = _report(runs, record, args)
    print(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"python": platform.python_version(), "machine": platform.machine(), "args": vars(args)}
    (RESULTS_DIR / f"metrics_multiprocess-{stamp}.json").write_text(
        json.dumps({"meta": meta, "runs": runs, "record_ns": record}, indent=2)
    )
    (RESULTS_DIR / f"metrics_multiprocess-{stamp}.md").write_text(report)


if __name__ == "__main__":
    main()
