"""Overhead of Overdrive's ObservabilityMiddleware against bare apps and peer Prometheus middlewares.

Ten hello-world apps (of `benchmarks/observability_apps.py`): bare Starlette, Starlette + Overdrive,
Starlette + starlette_exporter, bare FastAPI, FastAPI + prometheus-fastapi-instrumentator, FastAPI + Overdrive,
the two stacks with an access log (Overdrive's `instrument_app`; starlette_exporter + a stdlib JSON access line),
and Starlette and FastAPI with a do-nothing middleware that wraps `send` (the floor any response-seeing middleware
pays).
Each is served by granian (one worker, uvloop, pinned to core 0) and loaded by `wrk -t1 -c64 --latency`
(pinned to core 1), in interleaved rounds whose order alternates (forward, then reversed). The report gives
medians over the rounds and the median of per-round req/s ratios: each stack against its bare app, and
Overdrive against each peer stack. The peers run with their defaults and no extra logging.

The server helpers come from `benchmarks/servers.py`. Run from the repository root, with granian and the peers
installed in a benchmark venv (see BENCHMARKS.md):

    python benchmarks/observability.py --rounds 3                 # about 4 minutes
    python benchmarks/observability.py --rounds 1 --duration 2    # smoke test

Results go to `benchmarks/results/observability-<UTC>.json` (every run) and `.md` (the tables).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import (
    LOADGEN_CORE,
    RESULTS_DIR,
    ROOT,
    App,
    Endpoint,
    Run,
    measure_endpoint,
    server_command,
    server_env,
    serving,
    summarise,
)

APPS = (
    "starlette_bare",
    "starlette_overdrive",
    "starlette_exporter",
    "fastapi_bare",
    "fastapi_instrumentator",
    "fastapi_overdrive",
    "starlette_stack",
    "starlette_exporter_logged",
    "starlette_passthrough",
    "fastapi_passthrough",
)
# (stack, baseline): each stack against its bare app, then Overdrive against each peer stack.
VS_BARE = (
    ("starlette_overdrive", "starlette_bare"),
    ("starlette_exporter", "starlette_bare"),
    ("fastapi_overdrive", "fastapi_bare"),
    ("fastapi_instrumentator", "fastapi_bare"),
    ("starlette_stack", "starlette_bare"),
    ("starlette_exporter_logged", "starlette_bare"),
    ("starlette_passthrough", "starlette_bare"),
    ("fastapi_passthrough", "fastapi_bare"),
)
VS_PEER = (
    ("starlette_overdrive", "starlette_exporter"),
    ("fastapi_overdrive", "fastapi_instrumentator"),
    ("starlette_stack", "starlette_exporter_logged"),
)
OURS = frozenset({"starlette_overdrive", "fastapi_overdrive", "starlette_stack"})
GOAL_VS_BARE = 0.90
GOAL_VS_PEER = 3.0
SERVER = "granian"
DEFAULT_VENV_BIN = Path("/tmp/obs-venv/bin")


def build_apps(args: argparse.Namespace) -> list[App]:
    endpoint = Endpoint(name="/", path="/", connections=args.connections, duration=args.duration)
    return [
        App(
            name=name,
            target=f"benchmarks.observability_apps:{name}",
            factory=True,
            ready_path="/",
            endpoints=(endpoint,),
        )
        for name in args.apps
    ]


def metrics_check(port: int) -> str:
    """Status and size of /metrics after the run: evidence that the instrumented stacks recorded something."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read()
            return f"{response.status} ({len(body)} bytes)"
        finally:
            connection.close()
    return "unreachable"


def measure(args: argparse.Namespace, apps: list[App]) -> tuple[list[Run], dict[str, str]]:
    env = server_env(args)
    runs: list[Run] = []
    checks: dict[str, str] = {}
    port = args.port
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for round_ in range(1, args.rounds + 1):
        order = apps if round_ % 2 else list(reversed(apps))
        for app in order:
            port += 1
            command = server_command(SERVER, app, port, args.bin_dir)
            log = logs / f"observability-{app.name}.log"
            print(f"[round {round_}/{args.rounds}] {app.name} on {SERVER} (port {port})", flush=True)
            try:
                with serving(command, env, port, app.ready_path, log) as group:
                    runs.extend(
                        measure_endpoint(args, endpoint, port, group, round_=round_, server=SERVER, app=app)
                        for endpoint in app.endpoints
                    )
                    checks[f"{round_}/{app.name}"] = metrics_check(port)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"    FAILED: {exc} (server log: {log})", flush=True)
                failed = Run(round=round_, server=SERVER, app=app.name, endpoint="*", command=command)
                failed.error = str(exc)
                runs.append(failed)
    return runs, checks


def per_round_ratios(runs: list[Run], num: str, den: str) -> list[float]:
    """req/s of `num` over `den` in each round that measured both (same round: minutes apart)."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.result is not None:
            by_round.setdefault(run.round, {})[run.app] = run.result.requests_per_s
    return [r[num] / r[den] for r in by_round.values() if num in r and den in r and r[den] > 0]


def ratio_rows(runs: list[Run], pairs: tuple[tuple[str, str], ...], goal: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for num, den in pairs:
        ratios = per_round_ratios(runs, num, den)
        median = statistics.median(ratios) if ratios else None
        rows.append(
            {
                "stack": num,
                "baseline": den,
                "per_round": ratios,
                "median": median,
                "goal": goal,
                "met": median is not None and median >= goal,
            }
        )
    return rows


def markdown(runs: list[Run], args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    cells = {app: cell for (app, _, _), cell in summarise(runs).items()}
    lines = [
        "| app | req/s (median) | p50 ms | p99 ms | rounds | errors | foreign CPU (max) | per-round req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for app in args.apps:
        cell = cells.get(app)
        if cell is None:
            lines.append(f"| `{app}` | failed | | | 0 | | | |")
            continue
        rounds = ", ".join(f"{r:,.0f}" for r in cell.per_round_rps)
        lines.append(
            f"| `{app}` | {cell.requests_per_s:,.0f} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} | {cell.rounds} | "
            f"{cell.non_2xx + cell.socket_errors} | {cell.max_foreign_cpu:.0%} | {rounds} |"
        )
    ratios = {
        "vs_bare": ratio_rows(runs, VS_BARE, GOAL_VS_BARE),
        "vs_peer": ratio_rows(runs, VS_PEER, GOAL_VS_PEER),
    }
    lines += [
        "",
        "| stack / baseline | req/s ratio (median of per-round, min-max) | goal | met |",
        "|---|---|---:|---|",
    ]
    for row in [*ratios["vs_bare"], *ratios["vs_peer"]]:
        per_round = row["per_round"]
        assert isinstance(per_round, list)
        if not per_round:
            lines.append(f"| `{row['stack']}` / `{row['baseline']}` | - | {row['goal']} | no data |")
            continue
        # Only Overdrive's rows carry a goal; the peers' rows against their bare app are reported as measured.
        overdrive = row["stack"] in OURS
        goal = f">= {row['goal']:.2f}x" if overdrive else "-"
        met = ("yes" if row["met"] else "**no**") if overdrive else "-"
        lines.append(
            f"| `{row['stack']}` / `{row['baseline']}` | **{row['median']:.2f}x** "
            f"({min(per_round):.2f}-{max(per_round):.2f}) | {goal} | {met} |"
        )
    return "\n".join(lines), {"cells": {a: asdict(c) for a, c in cells.items()}, "ratios": ratios}


def versions(bin_dir: Path) -> dict[str, str]:
    """Versions in the benchmark venv (where granian and the apps run), and wrk's."""
    packages = (
        "granian",
        "starlette",
        "fastapi",
        "uvloop",
        "overdrive",
        "starlette_exporter",
        "prometheus-fastapi-instrumentator",
        "prometheus-client",
    )
    script = (
        "import json, platform, sys; from importlib import metadata\n"
        "def v(p):\n"
        "    try: return metadata.version(p)\n"
        "    except metadata.PackageNotFoundError: return 'not installed'\n"
        "print(json.dumps({'python': platform.python_version(), **{p: v(p) for p in sys.argv[1:]}}))"
    )
    found = {}
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", script, *packages], capture_output=True, text=True, check=False, timeout=30
    )
    with contextlib.suppress(json.JSONDecodeError):
        found = json.loads(done.stdout)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False, timeout=10)
    found["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0].strip()
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--apps", nargs="+", default=list(APPS), choices=APPS)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats of every app")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run (wrk -d)")
    parser.add_argument("--connections", type=int, default=64, help="connections (wrk -c)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load before each run")
    parser.add_argument("--port", type=int, default=19000, help="ports used count up from here")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="unused; servers.py's env needs it")
    default_bin = DEFAULT_VENV_BIN if (DEFAULT_VENV_BIN / "granian").exists() else Path(sys.executable).parent
    parser.add_argument("--bin-dir", type=Path, default=default_bin, help="the venv bin with granian and peers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("This benchmark needs two cores: one for the server, one for wrk.", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})
    started = datetime.now(UTC)
    print(f"Apps {args.apps} on {SERVER} from {args.bin_dir}, {args.rounds} interleaved rounds.", flush=True)
    runs, checks = measure(args, build_apps(args))
    table, summary = markdown(runs, args)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    command = ["python", "benchmarks/observability.py", *(sys.argv[1:] if argv is None else argv)]
    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(command),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(args.bin_dir),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "server_command": " ".join(server_command(SERVER, build_apps(args)[0], 0, args.bin_dir)),
        "metrics_after_run": checks,
        "runs": [asdict(run) for run in runs],
        "summary": summary,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"observability-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS_DIR / f"observability-{stamp}.md").write_text(table + "\n")
    print()
    print(table)
    print(f"Results: {json_path.relative_to(ROOT)}")
    return 1 if any(run.result is None for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
