"""Prometheus alerting rules for the RED metrics `ObservabilityMiddleware` exports, generated as data.

Three groups come out of `alert_rules`:

* ``overdrive-slo-ratios`` records, per ``job``, the request rate and the share of failed (5xx) and, with a latency
  SLO, slow requests over each window the burn-rate alerts read (5m, 30m, 1h, 6h, 3d), so alerts stay cheap;
* ``overdrive-route-ratios`` records, per job, route and method, the 5-minute request rate, 5xx share and p95;
* ``overdrive-alerts``: p95 latency and error share per route (warnings), and multi-window, multi-burn-rate alerts
  on the error budget (the SRE workbook's 14.4x over 1h and 5m and 6x over 6h and 30m page; 1x over 3d and 6h
  opens a ticket).

Every alert also needs a minimum request rate over its long window, so that one failed request in a quiet hour,
which is a large share of almost nothing, never pages anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yaml

from overdrive.exceptions import ConfigurationError
from overdrive.observability import names
from overdrive.observability._promql import job_matcher, number, parse_selector, series
from overdrive.observability.metrics import DEFAULT_BUCKETS

__all__ = ["BURN_WINDOWS", "BurnWindow", "alert_rules", "check_buckets", "rules_yaml"]

_COUNT: Final = f"{names.HTTP_REQUEST_DURATION}_count"
_BUCKET: Final = f"{names.HTTP_REQUEST_DURATION}_bucket"
_ROUTE_KEYS: Final = "job, route, method"


@dataclass(frozen=True, kw_only=True)
class BurnWindow:
    """One multi-window alert: fire when the budget burns `factor` times too fast over both windows."""

    severity: str
    long: str
    short: str
    factor: float
    budget_days: float  # how long a 30-day budget lasts at this burn rate, for the alert's description


BURN_WINDOWS: Final = (
    BurnWindow(severity="page", long="1h", short="5m", factor=14.4, budget_days=30 / 14.4),
    BurnWindow(severity="page", long="6h", short="30m", factor=6.0, budget_days=30 / 6.0),
    BurnWindow(severity="ticket", long="3d", short="6h", factor=1.0, budget_days=30.0),
)
_RATIO_WINDOWS: Final = ("5m", "30m", "1h", "6h", "3d")


def check_buckets(buckets: tuple[float, ...], threshold: float) -> None:
    """Reject a latency threshold that is not a bucket bound (the share under it would be interpolated)."""
    if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
        msg = f"Histogram buckets must be positive, distinct and increasing, not {buckets!r}."
        raise ConfigurationError(msg)
    if float(threshold) not in buckets:
        bounds = ", ".join(number(bound) for bound in buckets)
        msg = f"The latency threshold must be one of the histogram bucket bounds ({bounds}), not {threshold!r}."
        raise ConfigurationError(msg)


def _check_share(name: str, value: float, *, inclusive: bool = False) -> None:
    if not (0 < value < 1 or (inclusive and value == 1)):
        bounds = "(0, 1]" if inclusive else "(0, 1)"
        msg = f"{name} must be a fraction in {bounds}, e.g. 0.999 for 99.9%, not {value!r}."
        raise ConfigurationError(msg)


def _check_slo(name: str, value: float) -> None:
    _check_share(name, value)
    fastest = BURN_WINDOWS[0].factor
    if fastest * (1 - value) >= 1:
        msg = (
            f"{name} {value!r} leaves an error budget of {1 - value:.2%}; a {fastest}x burn would need more than "
            f"100% bad requests, so the fast page could never fire. Use an SLO above {1 - 1 / fastest:.5f}."
        )
        raise ConfigurationError(msg)


def _matchers(selector: str, job: str | None) -> tuple[str, ...]:
    matchers = parse_selector(selector)
    return (job_matcher(job), *matchers) if job is not None else matchers


def alert_rules(
    *,
    slo: float = 0.999,
    latency_threshold: float = 0.5,
    latency_slo: float | None = None,
    min_rate: float = 0.1,
    error_ratio: float = 0.05,
    selector: str = "",
    job: str | None = None,
    buckets: tuple[float, ...] = DEFAULT_BUCKETS,
) -> dict[str, Any]:
    """The rules file as a dict (``{"groups": [...]}``); `rules_yaml` writes it for Prometheus.

    Args:
        slo: availability objective, the share of requests that must not fail with a 5xx.
        latency_threshold: seconds; the p95 alert's threshold and the latency SLO's bound. Must be a bucket bound.
        latency_slo: share of requests that must finish within `latency_threshold`; None: no latency SLO alerts.
        min_rate: requests per second, over an alert's long window, below which nothing alerts.
        error_ratio: 5xx share of one route over 5 minutes above which that route alerts.
        selector: PromQL label matchers added to every series, e.g. ``env="prod"``.
        job: shorthand for the matcher ``job="<job>"``.
        buckets: the histogram bounds the application's `RequestMetrics` uses.

    Raises:
        ConfigurationError: an option is out of range, the threshold is not a bucket bound, or the selector is
            not PromQL.

    """
    _check_slo("The availability SLO", slo)
    if latency_slo is not None:
        _check_slo("The latency SLO", latency_slo)
    _check_share("The route error ratio", error_ratio, inclusive=True)
    if min_rate < 0:
        msg = f"The minimum request rate must be zero or more requests per second, not {min_rate!r}."
        raise ConfigurationError(msg)
    check_buckets(buckets, latency_threshold)
    matchers = _matchers(selector, job)
    return {
        "groups": [
            {"name": "overdrive-slo-ratios", "rules": _slo_recording(matchers, latency_threshold, latency_slo)},
            {"name": "overdrive-route-ratios", "rules": _route_recording(matchers)},
            {
                "name": "overdrive-alerts",
                "rules": [
                    *_route_alerts(latency_threshold, error_ratio, min_rate),
                    *_burn_alerts("availability", slo, min_rate),
                    *(_burn_alerts("latency", latency_slo, min_rate) if latency_slo is not None else []),
                ],
            },
        ]
    }


def _rate(name: str, matchers: tuple[str, ...], window: str, by: str = "job") -> str:
    return f"sum by ({by}) (rate({series(name, *matchers)}[{window}]))"


def _slo_recording(matchers: tuple[str, ...], threshold: float, latency_slo: float | None) -> list[dict[str, Any]]:
    errors = (*matchers, f'status="{names.SERVER_ERROR_STATUS}"')
    fast = (*matchers, f'le="{number(threshold)}"')
    rules: list[dict[str, Any]] = []
    for window in _RATIO_WINDOWS:
        # Later rules of a group see the earlier ones' results of the same evaluation: each long range is read once.
        total = f"job:http_server_requests:rate{window}"
        rules.append({"record": total, "expr": _rate(_COUNT, matchers, window)})
        rules.append(
            {
                "record": f"job:http_server_request_errors:ratio_rate{window}",
                "expr": f"{_rate(_COUNT, errors, window)}\n/\n{total}",
            }
        )
        if latency_slo is not None:
            rules.append(
                {
                    "record": f"job:http_server_requests_slow:ratio_rate{window}",
                    "expr": f"1 - (\n  {_rate(_BUCKET, fast, window)}\n  /\n  {total}\n)",
                }
            )
    return rules


def _route_recording(matchers: tuple[str, ...]) -> list[dict[str, Any]]:
    errors = (*matchers, f'status="{names.SERVER_ERROR_STATUS}"')
    total = _rate(_COUNT, matchers, "5m", _ROUTE_KEYS)
    by_bucket = _rate(_BUCKET, matchers, "5m", f"{_ROUTE_KEYS}, le")
    return [
        {"record": "job_route_method:http_server_requests:rate5m", "expr": total},
        {
            "record": "job_route_method:http_server_request_errors:ratio_rate5m",
            "expr": f"{_rate(_COUNT, errors, '5m', _ROUTE_KEYS)}\n/\n{total}",
        },
        {
            "record": "job_route_method:http_server_request_duration_seconds:p95_5m",
            "expr": f"histogram_quantile(0.95, {by_bucket})",
        },
    ]


def _route_alerts(threshold: float, error_ratio: float, min_rate: float) -> list[dict[str, Any]]:
    busy = f"and on ({_ROUTE_KEYS}) job_route_method:http_server_requests:rate5m >= {number(min_rate)}"
    route = "{{ $labels.method }} {{ $labels.route }}"
    return [
        {
            "alert": "OverdriveRouteLatencyHigh",
            "expr": f"job_route_method:http_server_request_duration_seconds:p95_5m > {number(threshold)}\n{busy}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"p95 latency of {route} is above {number(threshold)} s.",
                "description": (
                    f"Over 5 minutes, more than 5% of {route} requests on job {{{{ $labels.job }}}} took longer "
                    f"than {number(threshold)} s, for at least 5 minutes."
                ),
            },
        },
        {
            "alert": "OverdriveRouteErrorsHigh",
            "expr": f"job_route_method:http_server_request_errors:ratio_rate5m > {number(error_ratio)}\n{busy}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"More than {_percent(error_ratio)} of {route} requests fail with a 5xx.",
                "description": (
                    f"Over 5 minutes, the 5xx share of {route} on job {{{{ $labels.job }}}} has been above "
                    f"{_percent(error_ratio)}, for at least 5 minutes."
                ),
            },
        },
    ]


def _burn_alerts(kind: str, objective: float, min_rate: float) -> list[dict[str, Any]]:
    record = "http_server_request_errors" if kind == "availability" else "http_server_requests_slow"
    what = "5xx" if kind == "availability" else "slow"
    budget = number(round(1 - objective, 12))
    rules: list[dict[str, Any]] = []
    for window in BURN_WINDOWS:
        limit = f"{number(window.factor)} * {budget}"
        expr = (
            f"job:{record}:ratio_rate{window.long} > ({limit})\n"
            f"and on (job) job:{record}:ratio_rate{window.short} > ({limit})\n"
            f"and on (job) job:http_server_requests:rate{window.long} >= {number(min_rate)}"
        )
        rules.append(
            {
                "alert": f"Overdrive{kind.capitalize()}BudgetBurn",
                "expr": expr,
                "labels": {"severity": window.severity, "slo": kind, "window": window.long},
                "annotations": {
                    "summary": (
                        f"Job {{{{ $labels.job }}}} is burning its {kind} error budget {window.factor:g}x too fast."
                    ),
                    "description": (
                        f"The share of {what} requests over {window.long} and over {window.short} is above "
                        f"{_percent(window.factor * (1 - objective))} (objective {_percent(objective)}); "
                        f"at this rate a 30-day error budget lasts {window.budget_days:.1f} days."
                    ),
                },
            }
        )
    return rules


def _percent(share: float) -> str:
    return f"{round(share * 100, 6):g}%"


def rules_yaml(rules: dict[str, Any]) -> str:
    """The rules as a Prometheus rules file (YAML; multi-line expressions as literal blocks)."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _string)
    return yaml.dump(rules, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16)
