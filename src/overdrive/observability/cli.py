"""`overdrive observability`: write the alert rules and the Grafana dashboard for an application's metrics."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from overdrive.exceptions import ConfigurationError
from overdrive.observability.dashboards import dashboard as build_dashboard
from overdrive.observability.metrics import DEFAULT_BUCKETS
from overdrive.observability.rules import alert_rules, rules_yaml

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["observability"]

F = TypeVar("F", bound="Callable[..., Any]")


def _buckets(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...]:
    if value is None:
        return DEFAULT_BUCKETS
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        msg = f"{value!r} is not a comma-separated list of seconds, e.g. 0.1,0.5,1.0."
        raise click.BadParameter(msg, ctx, param) from None


def _shared(command: F) -> F:
    """The options the rules and the dashboard share (objectives, selector, buckets, output)."""
    options = [
        click.option("--slo", type=float, default=0.999, show_default=True, help="Availability objective (non-5xx)."),
        click.option(
            "--latency-threshold",
            type=float,
            default=0.5,
            show_default=True,
            help="Seconds, a histogram bucket bound: the p95 alert's threshold and the latency SLO's bound.",
        ),
        click.option(
            "--latency-slo",
            type=float,
            default=None,
            help="Share of requests within --latency-threshold, e.g. 0.99 (default: no latency SLO).",
        ),
        click.option("--job", default=None, help='Only series of this Prometheus job (adds job="JOB").'),
        click.option("--selector", default="", help='More label matchers for every series, e.g. env="prod".'),
        click.option(
            "--buckets",
            callback=_buckets,
            default=None,
            help="The application's histogram bounds, comma-separated (default: RequestMetrics' defaults).",
        ),
        click.option(
            "-o",
            "--output",
            type=click.File("w", lazy=True),
            default="-",
            show_default=True,
            help="Where to write; - is standard output.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def observability() -> None:
    """Alert rules and dashboards for the metrics ObservabilityMiddleware exports."""


@observability.command("rules")
@_shared
@click.option(
    "--min-rate",
    type=float,
    default=0.1,
    show_default=True,
    help="Requests per second over an alert's long window below which nothing alerts.",
)
@click.option(
    "--error-ratio",
    type=float,
    default=0.05,
    show_default=True,
    help="5xx share of one route over 5 minutes above which that route alerts.",
)
def rules(output: TextIO, **options: Any) -> None:
    """Write Prometheus alerting and recording rules (YAML): p95 and 5xx per route, SLO burn rates."""
    text = rules_yaml(_generate(alert_rules, options))
    output.write(text)


@observability.command("dashboard")
@_shared
@click.option("--title", default="Overdrive", show_default=True, help="The dashboard's title.")
@click.option("--uid", default="overdrive", show_default=True, help="The dashboard's uid.")
def dashboard(output: TextIO, **options: Any) -> None:
    """Write a Grafana dashboard (JSON): RED per route, budget burn, cache, database and jobs."""
    text = json.dumps(_generate(build_dashboard, options), indent=2) + "\n"
    output.write(text)


def _generate(generator: Callable[..., dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    try:
        return generator(**options)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
