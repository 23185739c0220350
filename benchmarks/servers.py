"""Compare ASGI servers (uvicorn, granian) on the physical floor and on the naive shop app.

Each server runs alone on core 0 (`taskset -c 0`) and `wrk` runs on core 1 (`taskset -c 1`), so the load
generator never steals the server's CPU. Peers are measured in the same run and interleaved: every round
starts each server in turn (A, B, A, B, ...), so drift of the machine (thermal, page cache, neighbours)
hits both sides alike. The report gives medians over the rounds and ratios between servers; absolute numbers
from different runs are never compared.

Run from the repository root:

    python benchmarks/servers.py                  # full run: 3 rounds, about 10 minutes
    python benchmarks/servers.py --rounds 1 --duration 3 --shop-duration 3   # smoke test

Results go to `benchmarks/results/servers-<UTC timestamp>.json` (every wrk run, plus the summary) and a
markdown table is printed (and saved next to the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PRODUCT_IDS_LUA = ROOT / "benchmarks" / "wrk" / "product_ids.lua"
SERVER_CORE = "0"
LOADGEN_CORE = "1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One URL to load, with the wrk settings that suit it."""

    name: str
    path: str
    connections: int
    duration: int
    script: Path | None = None  # a wrk Lua script that builds the requests instead of `path`


@dataclass(frozen=True, kw_only=True)
class App:
    """An ASGI app as the servers import it, and the endpoints measured on it."""

    name: str
    target: str
    factory: bool
    ready_path: str
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, kw_only=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: int = 0
    # CPU that neither the server nor wrk used, as a share of one core during the run: other tenants.
    foreign_cpu_server_core: float = 0.0
    foreign_cpu_loadgen_core: float = 0.0


@dataclass(kw_only=True)
class Run:
    """One measured (round, server, app, endpoint) combination."""

    round: int
    server: str
    app: str
    endpoint: str
    command: list[str]
    result: WrkResult | None = None
    error: str = ""


@dataclass(kw_only=True)
class Cell:
    """The medians of one (app, endpoint, server) combination over all rounds."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    rounds: int
    non_2xx: int
    socket_errors: int
    max_foreign_cpu: float
    per_round_rps: list[float] = field(default_factory=list)


# ---------------------------------------------------------------- what is measured


def build_apps(args: argparse.Namespace) -> dict[str, App]:
    """The three apps: raw ASGI and bare FastAPI (the floor), and the shop app in the naive profile."""

    floor = (Endpoint(name="/", path="/", connections=args.connections, duration=args.duration),)

    def shop(name: str, path: str, script: Path | None = None) -> Endpoint:
        connections, duration = args.shop_connections, args.shop_duration
        return Endpoint(name=name, path=path, connections=connections, duration=duration, script=script)

    return {
        "raw-asgi": App(
            name="raw-asgi",
            target="benchmarks.floor.raw_asgi:app",
            factory=False,
            ready_path="/",
            endpoints=floor,
        ),
        "bare-fastapi": App(
            name="bare-fastapi",
            target="benchmarks.floor.bare_fastapi:app",
            factory=False,
            ready_path="/",
            endpoints=floor,
        ),
        "shop-naive": App(
            name="shop-naive",
            target="overdrive.demo.app:create_app_from_env",
            factory=True,
            ready_path="/healthz",
            endpoints=(
                shop("/healthz", "/healthz"),
                shop("/products/{id}", "/products/1", PRODUCT_IDS_LUA),
                shop("/products?page=3", "/products?page=3"),
                shop("/categories/5/top", "/categories/5/top"),
                shop("/search?q=kettle", "/search?q=kettle"),
            ),
        ),
    }


def server_command(server: str, app: App, port: int, bin_dir: Path) -> list[str]:
    """The command line that serves `app` on `port` with one worker, uvloop, and no access log."""
    factory = ["--factory"] if app.factory else []
    common = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop"]
    common += ["--no-access-log", "--log-level", "warning"]
    if server == "uvicorn":
        options = ["--http", "httptools", "--ws", "none"]
        return [str(bin_dir / "uvicorn"), *common, *options, *factory, app.target]
    if server == "granian":
        options = ["--interface", "asgi", "--http", "1", "--no-ws"]
        return [str(bin_dir / "granian"), *common, *options, *factory, app.target]
    msg = f"Unknown server {server!r}; choose uvicorn or granian."
    raise ValueError(msg)


def wrk_command(endpoint: Endpoint, port: int, duration: int) -> list[str]:
    """`wrk` pinned to the load-generator core, one thread, with latency percentiles."""
    command = ["taskset", "-c", LOADGEN_CORE, "wrk", "-t1", f"-c{endpoint.connections}", f"-d{duration}s"]
    command += ["--timeout", "30s", "--latency"]
    if endpoint.script is not None:
        command += ["-s", str(endpoint.script)]
    return [*command, f"http://127.0.0.1:{port}{endpoint.path}"]


# ---------------------------------------------------------------- running servers and wrk


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of a server process: the repo on the path, the shop in its naive profile."""
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["OVERDRIVE_PROFILE"] = "naive"
    env["OVERDRIVE_DATA_DIR"] = str(args.data_dir)
    env["OVERDRIVE_CONFIRMATION_DELAY"] = "0.2"
    env.setdefault("DATABASE_URL", "")
    return env


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    """Poll `path` until it answers 200, the process dies, or `READY_TIMEOUT` passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"The server exited with status {process.returncode} before it was ready."
            raise RuntimeError(msg)
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", path)
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        time.sleep(0.2)
    msg = f"The server did not answer {path} with 200 within {READY_TIMEOUT:.0f} s."
    raise RuntimeError(msg)


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, ready_path: str, log: Path) -> Iterator[int]:
    """Run the server pinned to the server core for the block, then stop its process group.

    Yields:
        The id of the server's process group (the server and any worker processes it spawns).
    """
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: granian's worker is stopped with it
        )
        try:
            wait_ready(port, ready_path, process)
            yield process.pid
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it is still there after `STOP_TIMEOUT`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, the 50% and 99% latencies, and the error counts from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(rf"^\s+50%\s+{_DURATION}", output, re.MULTILINE)
    p99 = re.search(rf"^\s+99%\s+{_DURATION}", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        msg = f"Cannot read wrk's output:\n{output}"
        raise ValueError(msg)
    if int(total.group(1)) == 0:
        msg = "No request completed during the run; give it a longer --duration."
        raise ValueError(msg)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )


def run_wrk(command: list[str], duration: int) -> str:
    """Run wrk, bounded to its duration plus a generous margin, and return its output."""
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 45, check=False)
    if completed.returncode != 0:
        msg = f"wrk failed ({completed.returncode}): {completed.stderr.strip()}"
        raise RuntimeError(msg)
    return completed.stdout


# ---------------------------------------------------------------- other tenants on the cores


def _core_busy_ticks(core: str) -> int:
    """Busy clock ticks of one core since boot (everything but idle and iowait), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(n) for n in line.split()[1:9]]
            return sum(ticks) - ticks[3] - ticks[4]
    msg = f"/proc/stat has no line for core {core}."
    raise RuntimeError(msg)


def _group_ticks(group: int) -> int:
    """User + system clock ticks used so far by the live processes of one process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()  # fields after "pid (comm) ", starting at state
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total


class CPUMeter:
    """Measure how much CPU other tenants took on the server's and wrk's cores while wrk ran.

    The server is pinned to one core and wrk to the other, so any other busy time on those cores was
    stolen by processes outside this benchmark: a shared machine's noise, reported next to each result.
    wrk's own time is read from the children's resource usage, since it is waited for inside the block.
    """

    def __init__(self, group: int) -> None:
        self.group = group
        self.foreign_server_core = 0.0
        self.foreign_loadgen_core = 0.0

    def _sample(self) -> tuple[float, int, int, int, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.monotonic(),
            _core_busy_ticks(SERVER_CORE),
            _core_busy_ticks(LOADGEN_CORE),
            _group_ticks(self.group),
            children.ru_utime + children.ru_stime,
        )

    def __enter__(self) -> CPUMeter:
        self._start = self._sample()
        return self

    def __exit__(self, *exc_info: object) -> None:
        end = self._sample()
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = (end[0] - self._start[0]) or 1.0
        server_core, loadgen_core, server, wrk = (b - a for a, b in zip(self._start[1:], end[1:], strict=True))
        self.foreign_server_core = max(0.0, (server_core - server) / hz / elapsed)
        self.foreign_loadgen_core = max(0.0, (loadgen_core / hz - wrk) / elapsed)


# ---------------------------------------------------------------- the interleaved schedule


def measure(args: argparse.Namespace, apps: list[App]) -> list[Run]:
    """Run every (round, app, server) start in interleaved order and every endpoint under load."""
    env = server_env(args)
    runs: list[Run] = []
    port = args.port
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for round_ in range(1, args.rounds + 1):
        for app in apps:
            # Alternate which server goes first, so neither always follows the other: A,B then B,A.
            servers = args.servers if round_ % 2 else list(reversed(args.servers))
            for server in servers:
                port += 1  # a fresh port per start: no TIME_WAIT clash with the previous server
                command = server_command(server, app, port, args.bin_dir)
                log = logs / f"{server}-{app.name}.log"
                where = {"round_": round_, "server": server, "app": app}
                print(f"[round {round_}/{args.rounds}] {app.name} on {server} (port {port})", flush=True)
                try:
                    with serving(command, env, port, app.ready_path, log) as group:
                        runs += [measure_endpoint(args, e, port, group, **where) for e in app.endpoints]
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    print(f"    FAILED: {exc} (server log: {log})", flush=True)
                    runs.append(Run(round=round_, server=server, app=app.name, endpoint="*", command=command))
                    runs[-1].error = str(exc)
    return runs


def measure_endpoint(
    args: argparse.Namespace, endpoint: Endpoint, port: int, group: int, *, round_: int, server: str, app: App
) -> Run:
    """Warm the endpoint up briefly (not recorded), then measure it once.

    The warm-up uses a single connection, so at most one slow request is still in flight when it stops and
    the measured run does not start behind a backlog of warm-up requests.
    """
    if args.warmup > 0:
        warmup = replace(endpoint, connections=1, duration=args.warmup)
        run_wrk(wrk_command(warmup, port, args.warmup), args.warmup)
        time.sleep(1)
    command = wrk_command(endpoint, port, endpoint.duration)
    run = Run(round=round_, server=server, app=app.name, endpoint=endpoint.name, command=command)
    try:
        with CPUMeter(group) as meter:
            output = run_wrk(command, endpoint.duration)
        run.result = replace(
            parse_wrk(output),
            foreign_cpu_server_core=meter.foreign_server_core,
            foreign_cpu_loadgen_core=meter.foreign_loadgen_core,
        )
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        run.error = str(exc)
        print(f"    {endpoint.name}: FAILED: {exc}", flush=True)
        return run
    r = run.result
    errors = f"  non-2xx={r.non_2xx} socket-errors={r.socket_errors}" if r.non_2xx or r.socket_errors else ""
    print(
        f"    {endpoint.name:<20} {r.requests_per_s:>10.1f} req/s  p50 {r.p50_ms:8.2f} ms  "
        f"p99 {r.p99_ms:8.2f} ms  foreign CPU core{SERVER_CORE} {r.foreign_cpu_server_core:4.0%} "
        f"core{LOADGEN_CORE} {r.foreign_cpu_loadgen_core:4.0%}{errors}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------- summary and report


def summarise(runs: list[Run]) -> dict[tuple[str, str, str], Cell]:
    """Medians per (app, endpoint, server) over the rounds that produced a result."""
    groups: dict[tuple[str, str, str], list[WrkResult]] = {}
    for run in runs:
        if run.result is not None:
            groups.setdefault((run.app, run.endpoint, run.server), []).append(run.result)
    return {
        key: Cell(
            requests_per_s=statistics.median(r.requests_per_s for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            rounds=len(results),
            non_2xx=sum(r.non_2xx for r in results),
            socket_errors=sum(r.socket_errors for r in results),
            max_foreign_cpu=max(max(r.foreign_cpu_server_core, r.foreign_cpu_loadgen_core) for r in results),
            per_round_rps=[r.requests_per_s for r in results],
        )
        for key, results in groups.items()
    }


def paired_ratios(runs: list[Run], app: str, endpoint: str, num: str, den: str) -> list[float]:
    """Per-round req/s ratios `num / den`: each pair was measured in the same round, minutes apart."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.app == app and run.endpoint == endpoint and run.result is not None:
            by_round.setdefault(run.round, {})[run.server] = run.result.requests_per_s
    return [r[num] / r[den] for r in by_round.values() if num in r and den in r and r[den] > 0]


def _fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown(runs: list[Run], cells: dict[tuple[str, str, str], Cell], servers: list[str]) -> str:
    """One table per app: medians per server and the req/s ratio of the second server to the first."""
    lines: list[str] = []
    num, den = (servers[1], servers[0]) if len(servers) > 1 else (servers[0], servers[0])
    apps = list(dict.fromkeys(app for app, _, _ in cells))
    for app in apps:
        endpoints = list(dict.fromkeys(e for a, e, _ in cells if a == app))
        lines += [f"### {app}", ""]
        lines.append(
            "| endpoint | server | req/s (median) | p50 ms | p99 ms | rounds | errors | foreign CPU (max) | "
            f"{num}/{den} req/s (median of per-round ratios, min-max) |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for endpoint in endpoints:
            ratios = paired_ratios(runs, app, endpoint, num, den)
            spread = "-"
            if ratios:
                spread = f"**{statistics.median(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})"
            for i, server in enumerate(servers):
                cell = cells.get((app, endpoint, server))
                if cell is None:
                    lines.append(f"| `{endpoint}` | {server} | failed | | | 0 | | | |")
                    continue
                errors = cell.non_2xx + cell.socket_errors
                lines.append(
                    f"| `{endpoint}` | {server} | {cell.requests_per_s:,.0f} | {_fmt_ms(cell.p50_ms)} | "
                    f"{_fmt_ms(cell.p99_ms)} | {cell.rounds} | {errors} | {cell.max_foreign_cpu:.0%} | "
                    f"{spread if i == 0 else ''} |"
                )
        lines.append("")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Versions of Python, the servers, the framework, and wrk, for the report."""
    found = {"python": platform.python_version()}
    for package in ("uvicorn", "granian", "fastapi", "starlette", "uvloop", "httptools", "sqlalchemy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0].strip()
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the full, documented run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    servers = ["uvicorn", "granian"]
    parser.add_argument("--servers", nargs="+", default=servers, choices=servers)
    parser.add_argument("--apps", nargs="+", default=["raw-asgi", "bare-fastapi", "shop-naive"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats of every combination")
    parser.add_argument("--duration", type=int, default=10, help="seconds per floor run (wrk -d)")
    parser.add_argument("--connections", type=int, default=64, help="connections per floor run (wrk -c)")
    parser.add_argument("--shop-duration", type=int, default=10, help="seconds per shop endpoint run")
    parser.add_argument("--shop-connections", type=int, default=16, help="connections per shop endpoint run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load before each run")
    parser.add_argument("--port", type=int, default=18000, help="ports used count up from here")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="the seeded shop database")
    parser.add_argument(
        "--bin-dir", type=Path, default=Path(sys.executable).parent, help="where uvicorn and granian are"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, write the JSON and markdown results, and print the tables."""
    args = parse_args(argv)
    known = build_apps(args)
    unknown = [a for a in args.apps if a not in known]
    if unknown:
        print(f"Unknown app(s): {', '.join(unknown)}; choose from {', '.join(known)}.", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("This benchmark needs two cores: one for the server, one for wrk.", file=sys.stderr)
        return 2
    # This orchestrator is idle while wrk runs, but keep it off the server's core all the same.
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})
    started = datetime.now(UTC)
    print(f"Servers {args.servers}, apps {args.apps}, {args.rounds} interleaved rounds.", flush=True)
    runs = measure(args, [known[a] for a in args.apps])
    cells = summarise(runs)
    table = markdown(runs, cells, args.servers)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    report = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/servers.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "server_commands": {
            f"{s}/{a}": " ".join(server_command(s, known[a], 0, args.bin_dir)) for s in args.servers for a in args.apps
        },
        "runs": [asdict(run) for run in runs],
        "summary": [{"app": a, "endpoint": e, "server": s, **asdict(c)} for (a, e, s), c in cells.items()],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"servers-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS_DIR / f"servers-{stamp}.md").write_text(table + "\n")
    print()
    print(table)
    print(f"Results: {json_path.relative_to(ROOT)}")
    failed = [run for run in runs if run.result is None]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
