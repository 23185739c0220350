"""`overdrive load`: turn CLI options into a scenario and options, run with live progress, report, gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.live import Live
from rich.text import Text

from overdrive.exceptions import ConfigurationError, LoadTestError
from overdrive.loadtest._parse import parse_duration, parse_header, parse_stage
from overdrive.loadtest.abtest import run_interleaved
from overdrive.loadtest.compare import EXIT_CODES
from overdrive.loadtest.report import render_table, summary_lines, write_html
from overdrive.loadtest.runner import LoadOptions, Progress, default_procs, run_load
from overdrive.loadtest.scenario import Scenario, load_scenario
from overdrive.loadtest.thresholds import evaluate, parse_threshold

if TYPE_CHECKING:
    from rich.console import Console

    from overdrive.loadtest.result import LoadResult

__all__ = ["EXIT_FAILED_THRESHOLD", "EXIT_OK", "EXIT_USAGE", "CompareCommand", "LoadCommand"]

EXIT_OK = 0
EXIT_FAILED_THRESHOLD = 1
EXIT_USAGE = 2


@dataclass(frozen=True, kw_only=True)
class LoadCommand:
    """The options of `overdrive load`, as typed on the command line."""

    url: str | None
    connections: int = 64
    duration: str = "10s"
    rate: float | None = None
    stages: tuple[str, ...] = ()
    max_requests: int | None = None
    procs: int | None = None
    timeout: str = "10s"
    method: str = "GET"
    headers: tuple[str, ...] = ()
    body: str | None = None
    scenario: Path | None = None
    thresholds: tuple[str, ...] = ()
    json_path: Path | None = None
    html_path: Path | None = None
    allow_hosts: tuple[str, ...] = ()
    quiet: bool = False

    def build(self) -> tuple[Scenario, LoadOptions]:
        """The scenario and options these CLI values describe.

        Raises:
            ConfigurationError: an option is malformed or contradicts another.

        """
        if self.scenario is not None:
            scenario = load_scenario(self.scenario)
            if self.url:
                scenario = Scenario(self.url, scenario.requests, seed=scenario.seed)
        elif self.url:
            headers = dict(parse_header(h) for h in self.headers)
            body = self._body()
            if body is not None:
                headers.setdefault("Content-Type", "application/octet-stream")
            scenario = Scenario.single(self.url, method=self.method, headers=headers, body=body)
        else:
            msg = "Give a URL to load, or a --scenario file."
            raise ConfigurationError(msg)
        stages = tuple(parse_stage(s) for s in self.stages)
        options = LoadOptions(
            connections=self.connections,
            rate=self.rate if self.rate is not None or not stages else 0.0,
            stages=stages,
            duration_s=parse_duration(self.duration),
            max_requests=self.max_requests,
            procs=self.procs or default_procs(),
            timeout_s=parse_duration(self.timeout),
            allow_hosts=self.allow_hosts,
        )
        return scenario, options

    def _body(self) -> bytes | None:
        if self.body is None:
            return None
        if self.body.startswith("@"):
            path = Path(self.body[1:])
            if not path.is_file():
                msg = f"The body file {str(path)!r} does not exist."
                raise ConfigurationError(msg)
            return path.read_bytes()
        return self.body.encode()

    def run(self, console: Console) -> int:
        """Run, print, write the files, and return the exit status."""
        try:
            gates = [parse_threshold(t) for t in self.thresholds]
            scenario, options = self.build()
            result = self._load(scenario, options, console)
        except (ConfigurationError, LoadTestError) as exc:
            console.print(f"[red]error:[/] {exc}")
            return EXIT_USAGE
        outcomes = evaluate(gates, result.metrics(), by_name=result.name_metrics())
        result = replace(
            result,
            thresholds=[{"expression": o.threshold.source, "passed": o.passed, "message": o.message} for o in outcomes],
        )
        console.print(render_table(result))
        for line in summary_lines(result):
            console.print(line)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
        for outcome in outcomes:
            console.print(("[green]✓[/] " if outcome.passed else "[red]✗[/] ") + outcome.message)
        if self.json_path is not None:
            self.json_path.write_bytes(result.to_json())
        if self.html_path is not None:
            write_html(result, self.html_path)
        return EXIT_OK if all(o.passed for o in outcomes) else EXIT_FAILED_THRESHOLD

    def _load(self, scenario: Scenario, options: LoadOptions, console: Console) -> LoadResult:
        if self.quiet:
            return run_load(scenario, options)
        with Live(Text("starting workers…"), console=console, transient=True, refresh_per_second=4) as live:

            def show(p: Progress) -> None:
                live.update(
                    Text(
                        f"{p.elapsed_s:5.1f}/{p.duration_s:.0f} s  {p.completed:>10,} answered  "
                        f"{p.rate:>10,.0f} req/s  {p.errors:,} errors  p99 {p.p99_ms:,.2f} ms (last second)"
                    )
                )

            return run_load(scenario, options, on_progress=show)


@dataclass(frozen=True, kw_only=True)
class CompareCommand:
    """The options of `overdrive compare`: two targets, the shared load options, and the decision rule."""

    load: LoadCommand
    url_b: str
    runs: int = 10
    metric: str = "p50"
    alpha: float = 0.05
    min_effect: str = "5%"
    json_path: Path | None = None

    def run(self, console: Console) -> int:
        """Run A and B interleaved, print the verdict, and return its exit code (0, 1, or 2)."""
        try:
            effect = _fraction(self.min_effect)
            scenario_a, options = self.load.build()
            scenario_b, _ = replace(self.load, url=self.url_b).build()

            def show(side: str, index: int, result: LoadResult) -> None:
                value = result.metrics().get(self.metric, float("nan"))
                console.print(f"run {index + 1}/{self.runs} {side}: {self.metric} = {value:,.3f}  ({result.target})")

            outcome = run_interleaved(
                scenario_a, scenario_b, options, runs=self.runs, metric=self.metric, alpha=self.alpha,
                min_effect=effect, on_run=show,
            )  # fmt: skip
        except (ConfigurationError, LoadTestError) as exc:
            console.print(f"[red]error:[/] {exc}")
            return EXIT_CODES["insufficient_data"]
        verdict = outcome.comparison
        colour = {"regression": "red", "no_regression": "green"}.get(verdict.verdict, "yellow")
        console.print(f"[{colour}]{verdict.verdict}[/]: {verdict.message}")
        if self.json_path is not None:
            payload = {
                "schema": "overdrive.compare/1",
                "metric": outcome.metric,
                "a": {"target": scenario_a.base_url, "samples": outcome.samples_a},
                "b": {"target": scenario_b.base_url, "samples": outcome.samples_b},
                "comparison": asdict(verdict),
            }
            self.json_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        return verdict.exit_code


def _fraction(text: str) -> float:
    """``5%`` or ``0.05`` as a fraction."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        msg = f"Cannot read {text!r} as a minimum effect; write e.g. 5% or 0.05."
        raise ConfigurationError(msg) from exc
    if not 0 <= value < 1:
        msg = f"The minimum effect must lie between 0% and 100%, not {text!r}."
        raise ConfigurationError(msg)
    return value
