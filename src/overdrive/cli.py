"""The `overdrive` command: parses options and hands over to the subsystem that does the work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import click
from rich.console import Console

from overdrive import __version__
from overdrive.db.cli import db
from overdrive.demo.generator import SeedPlan
from overdrive.demo.settings import PROFILES, ProfileName, ShopSettings
from overdrive.exceptions import OverdriveError
from overdrive.observability.cli import observability

if TYPE_CHECKING:
    from collections.abc import Callable

    from overdrive.demo.server import ServerName

__all__ = ["main"]

T = TypeVar("T")


def _settings(
    scale: float, data_dir: Path, database_url: str | None, profile: str = "naive", redis_url: str | None = None
) -> ShopSettings:
    try:
        plan = SeedPlan(scale=scale)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from exc
    url = os.environ.get("DATABASE_URL", "") if database_url is None else database_url
    redis = os.environ.get("REDIS_URL", "") if redis_url is None else redis_url
    return ShopSettings(
        profile=cast("ProfileName", profile), database_url=url, data_dir=data_dir, plan=plan, redis_url=redis
    )


_scale = click.option(
    "--scale", type=float, default=1.0, show_default=True, help="Data set size (1.0 = 100k products)."
)
_data_dir = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".data"), show_default=True,
    help="Where the embedded SQLite database lives.",
)  # fmt: skip
_database_url = click.option(
    "--database-url",
    default=None,
    help="PostgreSQL or SQLite URL; defaults to $DATABASE_URL, else embedded SQLite.",
)
_redis_url = click.option(
    "--redis-url",
    default=None,
    help="Redis URL for the caching step's shared L2 tier; defaults to $REDIS_URL, else in-process memory only.",
)


@click.group()
@click.version_option(__version__, prog_name="overdrive")
def main() -> None:
    """Overdrive: the performance layer for Python ASGI backends."""


main.add_command(observability)


@main.group(invoke_without_command=True)
@_scale
@_data_dir
@_database_url
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="Measured seconds per profile.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Warm-up seconds per profile.",
)
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=16, show_default=True)
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default="granian", show_default=True)
@click.option(
    "--profile", "profiles", type=click.Choice(PROFILES), multiple=True,
    help=f"Profile to run (repeatable); default: every step in order ({', '.join(PROFILES)}).",
)  # fmt: skip
@_redis_url
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
)
@click.option(
    "--driver",
    type=click.Choice(["load", "httpx"]),
    default="load",
    show_default=True,
    help="Load generator: `overdrive load` (fast, HDR percentiles) or the simple httpx closed loop.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    scale: float,
    data_dir: Path,
    database_url: str | None,
    duration: float,
    warmup: float,
    concurrency: int,
    server: str,
    profiles: tuple[str, ...],
    redis_url: str | None,
    report_dir: Path,
    driver: str,
) -> None:
    """Run the reference shop in each profile under load and compare them side by side."""
    if ctx.invoked_subcommand is not None:
        return
    from overdrive.demo.driver import HTTPXDriver  # noqa: PLC0415 - loads the web stack on demand
    from overdrive.demo.loaddriver import LoadDriver  # noqa: PLC0415
    from overdrive.demo.runner import DemoOptions, DemoRunner  # noqa: PLC0415

    options = DemoOptions(
        settings=_settings(scale, data_dir, database_url, redis_url=redis_url),
        profiles=cast("tuple[ProfileName, ...]", profiles or PROFILES),
        server=cast("ServerName", server),
        duration_s=duration,
        warmup_s=warmup,
        concurrency=concurrency,
        report_dir=report_dir,
    )
    chosen = LoadDriver() if driver == "load" else HTTPXDriver()
    _run(lambda: DemoRunner(options, driver=chosen).run())


@demo.command("seed")
@_scale
@_data_dir
@_database_url
def demo_seed(scale: float, data_dir: Path, database_url: str | None) -> None:
    """Create and fill the shop database (instant when it already holds this data set)."""
    from overdrive.demo.runner import seed_with_progress  # noqa: PLC0415

    console = Console()
    settings = _settings(scale, data_dir, database_url)
    status = _run(lambda: seed_with_progress(settings, console))
    verb = "Seeded" if status.created else "Already seeded"
    console.print(f"{verb} in {status.seconds:.1f} s; digest {status.digest}")


@demo.command("serve")
@_scale
@_data_dir
@_database_url
@click.option("--profile", type=click.Choice(PROFILES), default="naive", show_default=True)
@_redis_url
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default="granian", show_default=True)
def demo_serve(
    scale: float,
    data_dir: Path,
    database_url: str | None,
    profile: str,
    redis_url: str | None,
    host: str,
    port: int,
    server: str,
) -> None:
    """Seed if needed, then serve the shop in one profile until interrupted."""
    from overdrive.demo.runner import seed_with_progress  # noqa: PLC0415
    from overdrive.demo.server import server_command  # noqa: PLC0415

    settings = _settings(scale, data_dir, database_url, profile, redis_url)
    console = Console()
    _run(lambda: seed_with_progress(settings, console))
    console.print(f"Serving the {profile} shop on http://{host}:{port} with {server} (Ctrl-C stops).")
    os.environ.update(settings.to_env())
    command = server_command(cast("ServerName", server), host, port)
    os.execv(command[0], command)  # noqa: S606 - replaces this process with the server


@main.command("load")
@click.argument("url", required=False)
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Closed model: connections kept busy. Open model: connections opened up front.",
)
@click.option("-d", "--duration", default="10s", show_default=True, help="How long to send, e.g. 30s or 2m.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=None,
    help="Open model: requests per second on a fixed schedule (latency counted from intended send time).",
)
@click.option("--stage", "stages", multiple=True, help="Open model: ramp DURATION:RATE after --rate (repeatable).")
@click.option(
    "-n", "--requests", "max_requests", type=click.IntRange(min=1), default=None, help="Stop after this many requests."
)
@click.option("--procs", type=click.IntRange(min=1), default=None, help="Worker processes (default: cores - 1).")
@click.option("--timeout", default="10s", show_default=True, help="Per-request timeout.")
@click.option("-m", "--method", default="GET", show_default=True)
@click.option("-H", "--header", "headers", multiple=True, help="Extra header 'Name: value' (repeatable).")
@click.option("--body", default=None, help="Request body, or @FILE to read it from a file.")
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A Python file defining `scenario` (see overdrive.loadtest.scenario).",
)
@click.option("--threshold", "thresholds", multiple=True, help="Gate, e.g. 'p99<50ms' or 'errors<0.1%'.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result as JSON (schema overdrive.load/1).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML report.",
)
@click.option("--allow-host", "allow_hosts", multiple=True, help="A non-loopback host that may be loaded.")
@click.option("--quiet", is_flag=True, help="No live progress.")
def load(
    url: str | None,
    connections: int,
    duration: str,
    rate: float | None,
    stages: tuple[str, ...],
    max_requests: int | None,
    procs: int | None,
    timeout: str,
    method: str,
    headers: tuple[str, ...],
    body: str | None,
    scenario: Path | None,
    thresholds: tuple[str, ...],
    json_path: Path | None,
    html_path: Path | None,
    allow_hosts: tuple[str, ...],
    quiet: bool,
) -> None:
    """Load URL (or a --scenario) and report throughput and true latency percentiles.

    Exit status: 0 when every threshold holds, 1 when one fails, 2 for bad input or an unreachable target.
    """
    from overdrive.loadtest.command import LoadCommand  # noqa: PLC0415 - loaded on demand

    command = LoadCommand(
        url=url, connections=connections, duration=duration, rate=rate, stages=stages, max_requests=max_requests,
        procs=procs, timeout=timeout, method=method, headers=headers, body=body, scenario=scenario,
        thresholds=thresholds, json_path=json_path, html_path=html_path, allow_hosts=allow_hosts, quiet=quiet,
    )  # fmt: skip
    raise SystemExit(command.run(Console()))


@main.command("compare")
@click.argument("url_a")
@click.argument("url_b")
@click.option("--runs", type=click.IntRange(min=2, max=200), default=10, show_default=True, help="Runs per side.")
@click.option(
    "--metric",
    default="p50",
    show_default=True,
    help="What to compare: p50, p90, p95, p99, p99.9, mean, max (ms), rps, errors.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0.0001, 0.5),
    default=0.05,
    show_default=True,
    help="Significance level of the one-sided Mann-Whitney U test.",
)
@click.option("--min-effect", default="5%", show_default=True, help="Smallest change of medians that counts.")
@click.option("-c", "--connections", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("-d", "--duration", default="3s", show_default=True, help="Length of each run.")
@click.option("--rate", type=click.FloatRange(min=0), default=None, help="Open model at this rate instead.")
@click.option("--procs", type=click.IntRange(min=1), default=None, help="Worker processes per run.")
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A scenario file; its requests are sent to both URLs.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write samples and verdict as JSON (schema overdrive.compare/1).",
)
@click.option("--allow-host", "allow_hosts", multiple=True, help="A non-loopback host that may be loaded.")
def compare(
    url_a: str,
    url_b: str,
    runs: int,
    metric: str,
    alpha: float,
    min_effect: str,
    connections: int,
    duration: str,
    rate: float | None,
    procs: int | None,
    scenario: Path | None,
    json_path: Path | None,
    allow_hosts: tuple[str, ...],
) -> None:
    """Decide whether URL_B is slower than URL_A from interleaved runs (A B A B ...).

    Exit status: 0 no regression, 1 regression, 2 not enough data or an environment error.
    """
    from overdrive.loadtest.command import CompareCommand, LoadCommand  # noqa: PLC0415 - loaded on demand

    load = LoadCommand(
        url=url_a, connections=connections, duration=duration, rate=rate, procs=procs, scenario=scenario,
        allow_hosts=allow_hosts, quiet=True,
    )  # fmt: skip
    command = CompareCommand(
        load=load, url_b=url_b, runs=runs, metric=metric, alpha=alpha, min_effect=min_effect, json_path=json_path
    )
    raise SystemExit(command.run(Console()))


main.add_command(db)


def _run(work: Callable[[], T]) -> T:
    try:
        return work()
    except OverdriveError as exc:
        raise click.ClickException(str(exc)) from exc
