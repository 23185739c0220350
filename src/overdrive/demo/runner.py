"""`overdrive demo`: seed, then serve and load each profile in turn, and report them side by side."""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from overdrive.demo.database import create_engine
from overdrive.demo.driver import DriveProgress, Driver, DriveSpec
from overdrive.demo.loaddriver import LoadDriver
from overdrive.demo.report import render_endpoint_table, render_table, write_html
from overdrive.demo.results import DemoResult, EndpointResult, ProfileResult
from overdrive.demo.seed import SeedStatus, ensure_seeded, reset_writes
from overdrive.demo.server import DEFAULT_SERVER, ServerName, serve
from overdrive.demo.settings import PROFILES, ProfileName, ShopSettings
from overdrive.exceptions import ConfigurationError

__all__ = ["DemoOptions", "DemoRunner", "seed_with_progress"]

REPORT_COLUMNS = 100


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """How to run the demo.

    Attributes:
        settings: database, seed and scale; the profile field is replaced for each run.
        profiles: the profiles to compare, in the order they run.
        server: the ASGI server to run the app on.
        duration_s: measured seconds per profile.
        warmup_s: unmeasured seconds per profile before that (connection pools, caches, page cache).
        concurrency: concurrent clients of the closed-loop driver.
        report_dir: where the HTML report and the JSON result go.

    """

    settings: ShopSettings = field(default_factory=ShopSettings)
    profiles: tuple[ProfileName, ...] = PROFILES
    server: ServerName = DEFAULT_SERVER
    duration_s: float = 20.0
    warmup_s: float = 3.0
    concurrency: int = 16
    report_dir: Path = field(default_factory=lambda: Path("reports"))

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.warmup_s < 0 or self.concurrency < 1:
            msg = (
                "The demo needs a positive duration, a warm-up of zero or more seconds and at least one client, "
                f"not duration={self.duration_s}, warmup={self.warmup_s}, concurrency={self.concurrency}."
            )
            raise ConfigurationError(msg)
        if not self.profiles:
            msg = "The demo needs at least one profile to run."
            raise ConfigurationError(msg)


def _cores() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Cores for the server and for the driver: apart when the machine has two or more."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) < 2:  # noqa: PLR2004
        return (), ()
    half = len(available) // 2
    return tuple(available[:half]), tuple(available[half:])


def seed_with_progress(settings: ShopSettings, console: Console) -> SeedStatus:
    """Seed the shop database if needed, with a progress bar."""
    with Progress(
        TextColumn("[bold]seeding[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=settings.plan.estimated_rows)

        def advance(table: str, rows: int) -> None:
            progress.update(task, advance=rows, description=table)

        async def run() -> SeedStatus:
            engine = create_engine(settings)
            try:
                return await ensure_seeded(engine, settings.plan, on_progress=advance)
            finally:
                await engine.dispose()

        return asyncio.run(run())


class DemoRunner:
    """Runs the whole demo; the driver is a parameter, so a faster load generator swaps in with one argument."""

    def __init__(self, options: DemoOptions, *, driver: Driver | None = None, console: Console | None = None):
        self.options = options
        self.driver: Driver = driver or LoadDriver()
        self.console = console or _console()

    def run(self) -> tuple[DemoResult, Path]:
        """Seed, measure every profile, print the tables and write the report.

        Returns:
            The result and the path of the HTML report.

        """
        options, console = self.options, self.console
        status = seed_with_progress(options.settings, console)
        verb = "seeded" if status.created else "already seeded"
        console.print(f"[green]✓[/] database {verb} ({status.seconds:.1f} s, digest {status.digest[:12]})")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        profiles = [self._measure(profile) for profile in options.profiles]
        result = DemoResult(
            started_at=started,
            server=options.server,
            driver=self.driver.name,
            database=options.settings.resolved_database_url.split(":", 1)[0],
            scale=options.settings.plan.scale,
            concurrency=options.concurrency,
            duration_s=options.duration_s,
            cpus=os.cpu_count() or 1,
            python=platform.python_version(),
            profiles=profiles,
        )
        console.print(render_table(result))
        console.print(render_endpoint_table(result))
        options.report_dir.mkdir(parents=True, exist_ok=True)
        stamp = started.replace(":", "").replace("-", "")[:15]
        (options.report_dir / f"demo-{stamp}.json").write_bytes(result.to_json())
        html = write_html(result, options.report_dir / f"demo-{stamp}.html")
        console.print(f"[green]✓[/] report written to {html}")
        return result, html

    def _measure(self, profile: ProfileName) -> ProfileResult:
        options = self.options
        settings = replace(options.settings, profile=profile)
        asyncio.run(_reset(settings))
        server_cores, driver_cores = _cores()
        self.console.print(f"[bold]{profile}[/]: starting {options.server}")
        with serve(settings, server=options.server, cpus=server_cores) as running:
            spec = DriveSpec(
                base_url=running.base_url,
                duration_s=options.duration_s,
                concurrency=options.concurrency,
                plan=settings.plan,
                seed=2,
                cpus=driver_cores,
            )
            if options.warmup_s > 0:
                self._drive(f"{profile} warm-up", replace(spec, duration_s=options.warmup_s, seed=1))
            httpx.delete(f"{running.base_url}/_demo/stats", timeout=10).raise_for_status()
            measured = self._drive(profile, spec)
            stats = httpx.get(f"{running.base_url}/_demo/stats", timeout=10).json()
        return _with_queries(replace(measured, profile=profile), stats)

    def _drive(self, label: str, spec: DriveSpec) -> ProfileResult:
        with Progress(
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            TextColumn("{task.fields[line]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=spec.duration_s, line="")

            def update(p: DriveProgress) -> None:
                line = f"{p.requests} requests, {p.errors} errors, {p.requests / max(p.elapsed_s, 1e-9):.0f} req/s"
                progress.update(task, completed=p.elapsed_s, line=line)

            result = self.driver.run(spec, update)
        self.console.print(
            f"  {label}: {result.requests} requests in {result.duration_s:.1f} s, "
            f"{result.throughput:.1f} req/s, p95 {result.latency.p95:.1f} ms, {result.errors} errors"
        )
        return result


def _console() -> Console:
    """A console for the tables: a terminal's own width, but at least the 100 columns they need in a log file."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, REPORT_COLUMNS)
    return console


async def _reset(settings: ShopSettings) -> None:
    engine = create_engine(settings)
    try:
        await reset_writes(engine)
    finally:
        await engine.dispose()


def _with_queries(result: ProfileResult, stats: dict[str, dict[str, int]]) -> ProfileResult:
    """Attach the server's statement counts (per route template) to the driver's per-endpoint figures."""
    endpoints: list[EndpointResult] = []
    total_requests = total_queries = 0
    for endpoint in result.endpoints:
        route = endpoint.name.split(" ", 1)[1]
        counted = stats.get(route)
        if counted is None or not counted["requests"]:
            endpoints.append(endpoint)
            continue
        total_requests += counted["requests"]
        total_queries += counted["queries"]
        endpoints.append(replace(endpoint, queries_per_request=counted["queries"] / counted["requests"]))
    overall = total_queries / total_requests if total_requests else None
    return replace(result, endpoints=endpoints, queries_per_request=overall)
