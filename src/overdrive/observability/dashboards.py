"""A Grafana dashboard for Overdrive's metrics, generated as data (`dashboard`).

Rows: RED per route (request rate, 5xx ratio, p50/p95/p99 latency, in-flight), the error budget burn rates the
alert rules page on, then the cache hit ratio, database time and job queue depth. The Prometheus data source, job,
route and method are template variables; every query reads raw series (never a recording rule), so the dashboard
works before the rules are loaded. The metric names come from `overdrive.observability.names`.
"""

from __future__ import annotations

from typing import Any, Final

from overdrive.exceptions import ConfigurationError
from overdrive.observability import names
from overdrive.observability._promql import job_matcher, number, parse_selector, series
from overdrive.observability.metrics import DEFAULT_BUCKETS
from overdrive.observability.rules import BURN_WINDOWS, check_buckets

__all__ = ["SCHEMA_VERSION", "dashboard"]

# The classic JSON model's schema version in current Grafana (12.x); Grafana migrates older versions on load.
SCHEMA_VERSION: Final = 42
_DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
_RATE: Final = "$__rate_interval"
_COUNT: Final = f"{names.HTTP_REQUEST_DURATION}_count"
_BUCKET: Final = f"{names.HTTP_REQUEST_DURATION}_bucket"
_WIDTH: Final = 24
_PANEL_HEIGHT: Final = 8
# The fast page's windows and the slow page's long one; 3d ranges on every step of a graph cost too much.
_BURN_PANEL_WINDOWS: Final = ("5m", "1h", "6h")

Panel = dict[str, Any]


def dashboard(
    *,
    slo: float = 0.999,
    latency_threshold: float = 0.5,
    latency_slo: float | None = None,
    selector: str = "",
    job: str | None = None,
    buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    title: str = "Overdrive",
    uid: str = "overdrive",
) -> dict[str, Any]:
    """The dashboard as a dict, ready for `json.dumps` and Grafana's import.

    Args:
        slo: availability objective; the burn-rate panel divides the 5xx share by ``1 - slo``.
        latency_threshold: seconds, a histogram bucket bound: the latency SLO's bound.
        latency_slo: share of requests that must finish within `latency_threshold`; None: no latency burn panel.
        selector: PromQL label matchers added to every query, e.g. ``env="prod"``.
        job: shorthand for the matcher ``job="<job>"``.
        buckets: the histogram bounds the application's `RequestMetrics` uses.
        title: the dashboard's title.
        uid: the dashboard's uid (stable, so a re-import replaces it).

    Raises:
        ConfigurationError: an objective is not a fraction in (0, 1), the threshold is not a bucket bound, or the
            selector is not PromQL.

    """
    for name, value in (("The availability SLO", slo), ("The latency SLO", latency_slo)):
        if value is not None and not 0 < value < 1:
            msg = f"{name} must be a fraction in (0, 1), e.g. 0.999 for 99.9%, not {value!r}."
            raise ConfigurationError(msg)
    check_buckets(buckets, latency_threshold)
    fixed = parse_selector(selector)
    if job is not None:
        fixed = (job_matcher(job), *fixed)
    scope = (*fixed, 'job=~"$job"')
    http = (*scope, 'route=~"$route"', 'method=~"$method"')
    rows = [
        ("Requests (RED)", _red_panels(http, scope)),
        ("Error budget", _budget_panels(scope, latency_threshold, latency_slo)),
        ("Cache", _cache_panels(scope)),
        ("Database", _database_panels(scope)),
        ("Jobs", _job_panels(scope)),
    ]
    return {
        "uid": uid,
        "title": title,
        "description": "RED metrics per route, error budget burn rates, cache, database and jobs (Overdrive).",
        "tags": ["overdrive"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables(fixed, slo, latency_slo)},
        "panels": _layout(rows),
    }


def _variables(fixed: tuple[str, ...], slo: float, latency_slo: float | None) -> list[dict[str, Any]]:
    variables = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        _label_variable("job", series(_COUNT, *fixed)),
        _label_variable("route", series(_COUNT, *fixed, 'job=~"$job"')),
        _label_variable("method", series(_COUNT, *fixed, 'job=~"$job"', 'route=~"$route"')),
        _constant("slo", slo),
    ]
    if latency_slo is not None:
        variables.append(_constant("latency_slo", latency_slo))
    return variables


def _label_variable(label: str, source: str) -> dict[str, Any]:
    query = f"label_values({source}, {label})"
    return {
        "name": label,
        "label": label.capitalize(),
        "type": "query",
        "datasource": _DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{label}-values"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
        "hide": 0,
    }


def _constant(name: str, value: float) -> dict[str, Any]:
    text = number(value)
    return {
        "name": name,
        "type": "constant",
        "query": text,
        "current": {"text": text, "value": text},
        "hide": 2,
    }


def _rate(name: str, matchers: tuple[str, ...], by: str = "", window: str = _RATE) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series(name, *matchers)}[{window}]))"


def _share(part: str, whole: str) -> str:
    return f"(\n  {part}\n  /\n  {whole}\n)"


def _red_panels(http: tuple[str, ...], scope: tuple[str, ...]) -> list[Panel]:
    errors = (*http, f'status="{names.SERVER_ERROR_STATUS}"')
    keys = "route, method"
    latency = [
        (
            f"histogram_quantile({quantile}, {_rate(_BUCKET, http, f'le, {keys}')})",
            f"p{round(quantile * 100)} {{{{method}}}} {{{{route}}}}",
        )
        for quantile in (0.5, 0.95, 0.99)
    ]
    in_flight = series(names.HTTP_REQUESTS_IN_FLIGHT, *scope, 'method=~"$method"')
    return [
        _panel("Request rate", [(_rate(_COUNT, http, keys), "{{method}} {{route}}")], "reqps"),
        _panel(
            "5xx ratio",
            [(f"{_rate(_COUNT, errors, keys)}\n/\n{_rate(_COUNT, http, keys)}", "{{method}} {{route}}")],
            "percentunit",
        ),
        _panel("Latency p50 / p95 / p99", latency, "s"),
        _panel("In flight", [(f"sum by (method) ({in_flight})", "{{method}}")], "short"),
    ]


def _budget_panels(scope: tuple[str, ...], threshold: float, latency_slo: float | None) -> list[Panel]:
    errors = (*scope, f'status="{names.SERVER_ERROR_STATUS}"')
    fast = (*scope, f'le="{number(threshold)}"')
    availability = [
        (f"{_share(_rate(_COUNT, errors, window=w), _rate(_COUNT, scope, window=w))} / (1 - $slo)", w)
        for w in _BURN_PANEL_WINDOWS
    ]
    panels = [_panel("Availability budget burn rate", availability, "x", burn_thresholds=True)]
    if latency_slo is not None:
        slow = [
            (f"(1 - {_share(_rate(_BUCKET, fast, window=w), _rate(_COUNT, scope, window=w))}) / (1 - $latency_slo)", w)
            for w in _BURN_PANEL_WINDOWS
        ]
        title = f"Latency budget burn rate (requests over {number(threshold)} s)"
        panels.append(_panel(title, slow, "x", burn_thresholds=True))
    return panels


def _cache_panels(scope: tuple[str, ...]) -> list[Panel]:
    hits, stale = _rate(names.CACHE_HITS, scope, "cache"), _rate(names.CACHE_STALE_SERVED, scope, "cache")
    reads = f"({hits} + {stale} + {_rate(names.CACHE_MISSES, scope, 'cache')})"
    load_time = f"{_rate(names.CACHE_LOAD_SECONDS, scope, 'cache')}\n/\n{_rate(names.CACHE_LOADS, scope, 'cache')}"
    return [
        _panel(
            "Cache hit ratio",
            [(f"{hits}\n/\n{reads}", "fresh hits {{cache}}"), (f"{stale}\n/\n{reads}", "stale served {{cache}}")],
            "percentunit",
        ),
        _panel(
            "Cache loads",
            [
                (_rate(names.CACHE_LOADS, scope, "cache"), "loads/s {{cache}}"),
                (_rate(names.CACHE_LOAD_ERRORS, scope, "cache"), "errors/s {{cache}}"),
            ],
            "ops",
        ),
        _panel("Cache mean load time", [(load_time, "{{cache}}")], "s"),
    ]


def _database_panels(scope: tuple[str, ...]) -> list[Panel]:
    db_sum, db_count = f"{names.DB_QUERY_DURATION}_sum", f"{names.DB_QUERY_DURATION}_count"
    http_sum = f"{names.HTTP_REQUEST_DURATION}_sum"
    return [
        _panel("Database time by route", [(_rate(db_sum, scope, "route"), "{{route}}")], "s"),
        _panel(
            "Database share of request time",
            [(f"{_rate(db_sum, scope)}\n/\n{_rate(http_sum, scope)}", "database / request time")],
            "percentunit",
        ),
        _panel(
            "Queries per request",
            [(f"{_rate(db_count, scope)}\n/\n{_rate(_COUNT, scope)}", "queries per request")],
            "short",
        ),
    ]


def _job_panels(scope: tuple[str, ...]) -> list[Panel]:
    depth = series(names.JOBS_QUEUE_DEPTH, *scope)
    return [_panel("Job queue depth", [(f"sum by (queue) ({depth})", "{{queue}}")], "short")]


def _panel(title: str, targets: list[tuple[str, str]], unit: str, *, burn_thresholds: bool = False) -> Panel:
    defaults: dict[str, Any] = {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 0}}
    if burn_thresholds:
        # The alert rules' burn factors as dashed lines: above a line over both of its windows, that alert fires.
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        steps += [
            {"color": "red" if w.severity == "page" else "orange", "value": w.factor} for w in reversed(BURN_WINDOWS)
        ]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    panel: Panel = {
        "type": "timeseries",
        "title": title,
        "datasource": _DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(targets)
        ],
    }
    if burn_thresholds:
        panel["interval"] = "1m"  # the ranges are long; a finer step only repeats the same value
    return panel


def _layout(rows: list[tuple[str, list[Panel]]]) -> list[Panel]:
    """Number the panels and place them: a row header, then its panels two or three to a line."""
    placed: list[Panel] = []
    y = 0
    for title, panels in rows:
        placed.append({"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": _grid(0, y, 24, 1)})
        y += 1
        per_line = 3 if len(panels) % 3 == 0 else 2
        width = _WIDTH // per_line
        for index, panel in enumerate(panels):
            line, column = divmod(index, per_line)
            panel["gridPos"] = _grid(column * width, y + line * _PANEL_HEIGHT, width, _PANEL_HEIGHT)
            placed.append(panel)
        y += -(-len(panels) // per_line) * _PANEL_HEIGHT
    for number_, panel in enumerate(placed, start=1):
        panel["id"] = number_
    return placed


def _grid(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}
