"""The generated Grafana dashboard: its structure, and every query checked against what our code really exports.

HTTP metric names are taken from the exposition of a real Starlette app served through `ObservabilityMiddleware`;
the cache, database and job names must be the constants of `overdrive.observability.names` (the contract for those
exporters). With promtool, every query (template variables substituted) must parse, and must return data, with no
NaN, from series built out of that real exposition.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.cache.metrics import CacheMetrics
from overdrive.exceptions import ConfigurationError
from overdrive.observability import ObservabilityMiddleware, RequestMetrics, dashboard, names
from overdrive.observability.dashboards import SCHEMA_VERSION
from tests.observability.promtool import check_rules, run

# What Grafana puts in place of each template variable when everything is selected.
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    '"$job"': '".*"',
    '"$route"': '".*"',
    '"$method"': '".*"',
    "$latency_slo": "0.99",
    "$slo": "0.999",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_CACHE_NAMES = {
    names.CACHE_HITS,
    names.CACHE_MISSES,
    names.CACHE_STALE_SERVED,
    names.CACHE_LOADS,
    names.CACHE_LOAD_ERRORS,
    names.CACHE_LOAD_SECONDS,
}
_DB_NAMES = {f"{names.DB_QUERY_DURATION}_{suffix}" for suffix in ("bucket", "sum", "count")}
_PLANNED_NAMES = _CACHE_NAMES | _DB_NAMES | {names.JOBS_QUEUE_DEPTH}


async def _item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def _boom(request: Request) -> Response:
    msg = "boom"
    raise RuntimeError(msg)


async def _created(request: Request) -> Response:
    return PlainTextResponse("created", status_code=201)


async def _scrape_twice() -> tuple[str, str]:
    """Serve a real app through the middleware, and scrape /metrics after each of two bursts of requests."""
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", _item),
            Route("/boom", _boom),
            Route("/things", _created, methods=["POST"]),
        ]
    )
    middleware = ObservabilityMiddleware(app, metrics=RequestMetrics())
    transport = httpx.ASGITransport(app=middleware, raise_app_exceptions=False)
    scrapes = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for burst in (1, 2):
            for item in range(10 * burst):
                assert (await client.get(f"/items/{item}")).status_code == 200
            assert (await client.post("/things")).status_code == 201
            assert (await client.get("/boom")).status_code == 500
            scrapes.append((await client.get("/metrics")).text)
    return scrapes[0], scrapes[1]


def _samples(exposition: str) -> dict[str, float]:
    """Each sample of an exposition as ``name{labels}`` (promtool series notation) -> value."""
    out = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = {"job": "shop", **sample.labels}
            text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
            out[f"{sample.name}{{{text}}}"] = sample.value
    return out


def _queries(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def _substituted(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown template variable is left in {expr!r}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, matchers, ranges and groupings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', _substituted(expr))
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    identifiers = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)", text)
    return {name for name, call in identifiers if not call and name.lower() not in _KEYWORDS}


@pytest.fixture(scope="module")
def scrapes() -> tuple[str, str]:
    import anyio

    return anyio.run(_scrape_twice)


class TestStructure:
    def test_the_model_is_grafana_current_with_datasource_job_route_and_method_variables(self) -> None:
        board = json.loads(json.dumps(dashboard()))
        assert board["schemaVersion"] == SCHEMA_VERSION
        assert board["uid"] == "overdrive"
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert list(variables) == ["datasource", "job", "route", "method", "slo"]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["slo"] == {
            "name": "slo",
            "type": "constant",
            "query": "0.999",
            "current": {"text": "0.999", "value": "0.999"},
            "hide": 2,
        }
        for label in ("job", "route", "method"):
            assert variables[label]["definition"].startswith("label_values(http_server_request_duration_seconds_count")
            assert variables[label]["definition"].endswith(f", {label})")
            assert variables[label]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}

    def test_rows_hold_red_budget_cache_database_and_jobs_panels(self) -> None:
        board = dashboard(latency_slo=0.99)
        rows: dict[str, list[str]] = {}
        current = ""
        for panel in board["panels"]:
            if panel["type"] == "row":
                current = panel["title"]
                rows[current] = []
            else:
                rows[current].append(panel["title"])
        assert rows == {
            "Requests (RED)": ["Request rate", "5xx ratio", "Latency p50 / p95 / p99", "In flight"],
            "Error budget": ["Availability budget burn rate", "Latency budget burn rate (requests over 0.5 s)"],
            "Cache": ["Cache hit ratio", "Cache loads", "Cache mean load time"],
            "Database": ["Database time by route", "Database share of request time", "Queries per request"],
            "Jobs": ["Job queue depth"],
        }
        latency = next(p for p in board["panels"] if p["title"] == "Latency p50 / p95 / p99")
        assert [t["expr"].split(",")[0] for t in latency["targets"]] == [
            "histogram_quantile(0.5",
            "histogram_quantile(0.95",
            "histogram_quantile(0.99",
        ]

    def test_panels_have_unique_ids_and_refids_the_datasource_variable_and_do_not_overlap(self) -> None:
        panels = dashboard(latency_slo=0.99)["panels"]
        assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            area = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{panel['title']} overlaps another panel"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            refs = [t["refId"] for t in panel["targets"]]
            assert refs
            assert len(set(refs)) == len(refs)
            assert all(t["datasource"] == panel["datasource"] and t["expr"] for t in panel["targets"])

    def test_job_and_selector_reach_every_query_and_variable(self) -> None:
        board = dashboard(job="shop", selector='env="prod"')
        queries = _queries(board) + [v["definition"] for v in board["templating"]["list"] if "definition" in v]
        for query in queries:
            selectors = re.findall(r"\b[a-z_:]+\{([^}]*)\}", query)
            assert selectors, query
            assert all(s.startswith('job="shop",env="prod"') for s in selectors), query

    def test_bad_options_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="bucket bounds"):
            dashboard(latency_threshold=0.3)
        with pytest.raises(ConfigurationError, match="must be a fraction"):
            dashboard(latency_slo=1.0)
        with pytest.raises(ConfigurationError, match="not a list of PromQL matchers"):
            dashboard(selector="{env=prod}")


class TestMetricNames:
    def test_the_name_parser_finds_metrics_and_skips_functions_labels_and_keywords(self) -> None:
        expr = 'sum by (le, route) (rate(a_bucket{route=~"$route",x="y{z}"}[$__rate_interval])) / on (job) b and c'
        assert metric_names(expr) == {"a_bucket", "b", "c"}

    def test_every_query_reads_only_metrics_our_code_exports(self, scrapes: tuple[str, str]) -> None:
        exported = {sample.name for f in text_string_to_metric_families(scrapes[1]) for sample in f.samples}
        assert {"http_server_request_duration_seconds_bucket", "http_server_requests_in_flight"} <= exported
        board = dashboard(latency_slo=0.99)
        used = set().union(*(metric_names(q) for q in _queries(board)))
        for variable in board["templating"]["list"]:
            if "definition" in variable:
                used |= set(re.findall(r"label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)", variable["definition"]))
        http = {name for name in used if name.startswith("http_server_")}
        assert http
        assert http <= exported, f"not in the exposition: {http - exported}"
        assert used - http <= _PLANNED_NAMES, f"not in overdrive.observability.names: {used - http - _PLANNED_NAMES}"
        assert used >= _CACHE_NAMES
        assert names.JOBS_QUEUE_DEPTH in used

    def test_cache_names_are_the_cache_counters(self) -> None:
        counters = set(CacheMetrics.__slots__)
        for name in _CACHE_NAMES:
            attribute = name.removeprefix("overdrive_cache_").removesuffix("_total")
            assert attribute in counters, f"{name} matches no CacheMetrics counter"


def _synthetic_series() -> list[dict[str, str]]:
    """Series for the metrics whose exporters are still to come, named and labelled as `names` documents."""
    cache = 'cache="products",job="shop"'
    db = 'job="shop",route="/items/{item_id}"'
    return [
        {"series": f"{names.CACHE_HITS}{{{cache}}}", "values": "0 90"},
        {"series": f"{names.CACHE_MISSES}{{{cache}}}", "values": "0 8"},
        {"series": f"{names.CACHE_STALE_SERVED}{{{cache}}}", "values": "0 2"},
        {"series": f"{names.CACHE_LOADS}{{{cache}}}", "values": "0 8"},
        {"series": f"{names.CACHE_LOAD_ERRORS}{{{cache}}}", "values": "0 1"},
        {"series": f"{names.CACHE_LOAD_SECONDS}{{{cache}}}", "values": "0 0.4"},
        {"series": f"{names.DB_QUERY_DURATION}_sum{{{db}}}", "values": "0 0.2"},
        {"series": f"{names.DB_QUERY_DURATION}_count{{{db}}}", "values": "0 30"},
        {"series": f'{names.JOBS_QUEUE_DEPTH}{{job="shop",queue="mail"}}', "values": "3 5"},
    ]


@pytest.mark.integration
class TestPromtool:
    def test_every_query_parses(self, tmp_path: Path) -> None:
        queries = _queries(dashboard(latency_slo=0.99, selector='env!="dev"'))
        rules = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [{"record": f"query:{i}", "expr": _substituted(q)} for i, q in enumerate(queries)],
                }
            ]
        }
        path = tmp_path / "queries.yml"
        path.write_text(yaml.safe_dump(rules))
        assert f"SUCCESS: {len(queries)} rules found" in check_rules(path)

    def test_every_query_returns_data_and_no_nan_on_the_real_exposition(
        self, tmp_path: Path, scrapes: tuple[str, str]
    ) -> None:
        first, second = _samples(scrapes[0]), _samples(scrapes[1])
        series = [
            {"series": name, "values": f"{first[name]!r} {value!r}" if name in first else f"_ {value!r}"}
            for name, value in second.items()
        ]
        assert any('status="5xx"' in s["series"] for s in series), "the app run must include a failure"
        queries = [_substituted(q) for q in _queries(dashboard(latency_slo=0.99, job="shop"))]
        alerts = []
        for index, query in enumerate(queries):
            alerts.append({"alert": f"Empty{index}", "expr": f"absent({query})"})
            alerts.append({"alert": f"NaN{index}", "expr": f"({query}) != ({query})"})
        (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": alerts}]}))
        test = {
            "rule_files": ["queries.yml"],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series + _synthetic_series(),
                    "alert_rule_test": [{"eval_time": "1m", "alertname": a["alert"], "exp_alerts": []} for a in alerts],
                }
            ],
        }
        (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
        result = run("test", "rules", "test.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
