"""Exemplars: a sampled request's trace id on its duration bucket, merged across workers, shown only in OpenMetrics."""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from overdrive.exceptions import ConfigurationError
from overdrive.observability import (
    METRICS_DIR_ENV,
    ObservabilityMiddleware,
    RequestMetrics,
    SharedMetricsStore,
    instrument_app,
)
from overdrive.observability._openmetrics import accepts_openmetrics, canonical_number
from overdrive.observability._process import ProcessIdentity, current_identity
from overdrive.observability._snapshot import Exemplar, SeriesTotals, Snapshot
from overdrive.observability.metrics import DEFAULT_BUCKETS, OTHER_ROUTE
from overdrive.observability.tracing import sampled_trace_id, traced, tracer_provider
from tests.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

ROUTE = ("GET", "/items/{id}", "2xx")
BUCKET = "http_server_request_duration_seconds_bucket"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def parse_openmetrics(text: str) -> Iterator[Metric]:
    """prometheus_client's OpenMetrics parser (strict: EOF, metadata order, exemplars), which has no annotations."""
    families: Iterator[Metric] = openmetrics_parser.text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    return families


def _record(metrics: RequestMetrics, route: str, seconds: float, trace_id: str | None, at: float = 100.0) -> None:
    metrics.started("GET")
    metrics.finished("GET", route, 200, seconds)
    if trace_id is not None:
        metrics.exemplar("GET", route, 200, seconds, trace_id, timestamp=at)


def _bucket(seconds: float) -> int:
    """The index of the bucket a duration falls in, found by scanning (independently of the registry's bisect)."""
    return next((i for i, bound in enumerate(DEFAULT_BUCKETS) if seconds <= bound), len(DEFAULT_BUCKETS))


def _exemplars(text: str) -> dict[tuple[str, str], Any]:
    """(route, le) -> the exemplar on that bucket line, from a parsed OpenMetrics exposition."""
    found = {}
    for family in parse_openmetrics(text):
        for sample in family.samples:
            if sample.exemplar is not None:
                found[sample.labels["route"], sample.labels["le"]] = sample.exemplar
    return found


def _snapshot(slots: dict[int, Exemplar], requests: int = 1) -> Snapshot:
    counts = [0] * (len(DEFAULT_BUCKETS) + 1)
    counts[2] = requests
    exemplars: list[Exemplar | None] = [slots.get(i) for i in range(len(counts))]
    return Snapshot(DEFAULT_BUCKETS, {"GET": 0}, {ROUTE: SeriesTotals(counts, 0.02 * requests, exemplars)})


class TestRecording:
    def test_a_sampled_request_becomes_the_exemplar_of_its_bucket_only(self) -> None:
        metrics = RequestMetrics()
        _record(metrics, "/items/{id}", 0.03, TRACE_A, at=1234.5)
        [(key, totals)] = metrics.snapshot().series.items()
        assert key == ROUTE
        assert totals.exemplars is not None
        expected: list[Exemplar | None] = [None] * (len(DEFAULT_BUCKETS) + 1)
        expected[_bucket(0.03)] = Exemplar(TRACE_A, 0.03, 1234.5)
        assert totals.exemplars == expected

    def test_the_latest_exemplar_replaces_the_one_before_in_its_bucket(self) -> None:
        metrics = RequestMetrics()
        _record(metrics, "/items/{id}", 0.03, TRACE_A, at=1.0)
        _record(metrics, "/items/{id}", 0.04, TRACE_B, at=2.0)
        _record(metrics, "/items/{id}", 7.0, TRACE_A, at=3.0)
        _record(metrics, "/items/{id}", 0.045, None)  # not sampled: replaces nothing
        exemplars = metrics.snapshot().series[ROUTE].exemplars
        assert exemplars is not None
        assert exemplars[_bucket(0.04)] == Exemplar(TRACE_B, 0.04, 2.0)
        assert exemplars[_bucket(7.0)] == Exemplar(TRACE_A, 7.0, 3.0)
        assert sum(e is not None for e in exemplars) == 2

    def test_the_timestamp_is_now_by_default(self) -> None:
        metrics = RequestMetrics()
        metrics.started("GET")
        metrics.finished("GET", "/items/{id}", 200, 0.001)
        before = time.time()
        metrics.exemplar("GET", "/items/{id}", 200, 0.001, TRACE_A)
        exemplars = metrics.snapshot().series[ROUTE].exemplars
        assert exemplars is not None
        assert exemplars[0] is not None
        assert before <= exemplars[0].timestamp <= time.time()

    def test_a_folded_route_lands_on_the_other_series_as_its_count_does(self) -> None:
        metrics = RequestMetrics(max_routes=1)
        _record(metrics, "/a", 0.001, TRACE_A)
        _record(metrics, "/b", 0.001, TRACE_B)
        series = metrics.snapshot().series
        assert set(series) == {("GET", "/a", "2xx"), ("GET", OTHER_ROUTE, "2xx")}
        other = series["GET", OTHER_ROUTE, "2xx"].exemplars
        assert other is not None
        assert other[0] is not None
        assert other[0].trace_id == TRACE_B

    def test_an_exemplar_for_a_request_never_counted_is_dropped(self) -> None:
        metrics = RequestMetrics()
        metrics.exemplar("GET", "/never", 200, 0.01, TRACE_A)
        assert metrics.snapshot().series == {}
        assert metrics.exemplars == {}

    def test_a_trace_id_too_long_for_the_openmetrics_label_limit_is_refused(self) -> None:
        metrics = RequestMetrics()
        _record(metrics, "/items/{id}", 0.01, "x" * (128 - len("trace_id")))  # exactly at the limit
        with pytest.raises(ValueError, match="120 characters at most"):
            metrics.exemplar("GET", "/items/{id}", 200, 0.01, "x" * 121)

    def test_exemplars_leave_the_prometheus_text_byte_for_byte_unchanged(self) -> None:
        plain, with_exemplars = RequestMetrics(), RequestMetrics()
        for index, seconds in enumerate((0.001, 0.03, 0.3, 3.0, 30.0)):
            _record(plain, f"/r{index % 2}", seconds, None)
            _record(with_exemplars, f"/r{index % 2}", seconds, TRACE_A)
        assert with_exemplars.render() == plain.render()
        assert "trace_id" not in with_exemplars.render()
        assert "trace_id" in with_exemplars.render(openmetrics=True)


class TestSnapshots:
    def test_exemplars_survive_encoding(self) -> None:
        snapshot = _snapshot({2: Exemplar(TRACE_A, 0.02, 17.25), 11: Exemplar(TRACE_B, 12.0, 18.5)})
        decoded = Snapshot.from_dict(orjson.loads(snapshot.encode()))
        assert decoded == snapshot

    def test_a_snapshot_without_exemplars_is_written_as_before(self) -> None:
        snapshot = _snapshot({})
        snapshot.series[ROUTE].exemplars = None
        [row] = orjson.loads(snapshot.encode())["series"]
        assert row == [*ROUTE, snapshot.series[ROUTE].counts, snapshot.series[ROUTE].total]

    def test_merging_keeps_the_latest_exemplar_of_each_bucket(self) -> None:
        total = Snapshot(DEFAULT_BUCKETS)
        total.add(_snapshot({2: Exemplar(TRACE_A, 0.02, 5.0), 3: Exemplar(TRACE_A, 0.04, 9.0)}), gauges=True)
        total.add(_snapshot({2: Exemplar(TRACE_B, 0.021, 6.0), 3: Exemplar(TRACE_B, 0.03, 8.0)}), gauges=True)
        total.add(_snapshot({}, requests=0), gauges=True)
        merged = total.series[ROUTE]
        assert merged.count == 2
        assert merged.exemplars is not None
        assert merged.exemplars[2] == Exemplar(TRACE_B, 0.021, 6.0)
        assert merged.exemplars[3] == Exemplar(TRACE_A, 0.04, 9.0)

    def test_exemplars_reach_a_total_that_had_none(self) -> None:
        total = Snapshot(DEFAULT_BUCKETS)
        bare = _snapshot({})
        bare.series[ROUTE].exemplars = None
        total.add(bare, gauges=True)
        total.add(_snapshot({4: Exemplar(TRACE_A, 0.09, 1.0)}), gauges=True)
        assert total.series[ROUTE].exemplars == _snapshot({4: Exemplar(TRACE_A, 0.09, 1.0)}).series[ROUTE].exemplars

    @pytest.mark.parametrize(
        ("exemplars", "error"),
        [
            ([None] * 3, ValueError),  # not one per bucket
            ([[7, 0.1, 1.0]] + [None] * len(DEFAULT_BUCKETS), TypeError),  # the trace id is no string
            ([[TRACE_A, 0.1]] + [None] * len(DEFAULT_BUCKETS), TypeError),  # no timestamp
        ],
    )
    def test_malformed_exemplars_are_refused(self, exemplars: list[Any], error: type[Exception]) -> None:
        data = _snapshot({}).to_dict()
        data["series"][0][5] = exemplars
        with pytest.raises(error):
            Snapshot.from_dict(data)


def _writer(nonce: int, *, dead: bool = False) -> str:
    me = current_identity()
    identity = ProcessIdentity(me.boot, me.pid, me.start + 1) if dead else me  # a reused pid: the writer is gone
    return f"w-{identity.token}-{nonce:08x}"


class TestSharedExemplars:
    def test_the_latest_exemplar_across_workers_wins_and_a_dead_one_s_is_folded_once(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_writer(1), _snapshot({2: Exemplar(TRACE_A, 0.02, 10.0)}, requests=3).encode())
        store.write(
            _writer(2, dead=True),
            _snapshot({2: Exemplar(TRACE_B, 0.02, 20.0), 5: Exemplar(TRACE_B, 0.2, 5.0)}).encode(),
        )
        for _ in range(2):  # the second collect reads the dead worker from retired.json only
            total = store.collect().series[ROUTE]
            assert total.count == 4
            assert total.exemplars is not None
            assert total.exemplars[2] == Exemplar(TRACE_B, 0.02, 20.0)
            assert total.exemplars[5] == Exemplar(TRACE_B, 0.2, 5.0)
        assert not (tmp_path / f"{_writer(2, dead=True)}.json").exists()
        store.write(_writer(1), _snapshot({2: Exemplar(TRACE_A, 0.02, 30.0)}, requests=3).encode())
        total = store.collect().series[ROUTE]
        assert total.count == 4
        assert total.exemplars is not None
        assert total.exemplars[2] == Exemplar(TRACE_A, 0.02, 30.0), "a newer live exemplar beats a retired one"
        assert total.exemplars[5] == Exemplar(TRACE_B, 0.2, 5.0)

    def test_a_scrape_shows_another_writer_s_exemplar_and_keeps_it_once_that_writer_closes(
        self, tmp_path: Path
    ) -> None:
        scraper = RequestMetrics(multiprocess_dir=tmp_path)
        other = RequestMetrics(multiprocess_dir=tmp_path)
        try:
            _record(scraper, "/items/{id}", 0.02, TRACE_A, at=1.0)
            _record(other, "/items/{id}", 0.02, TRACE_B, at=2.0)
            other.render()  # publishes now
            seen = _exemplars(scraper.render(openmetrics=True))
            assert seen["/items/{id}", "0.025"].labels == {"trace_id": TRACE_B}
            other.close()
            seen = _exemplars(scraper.render(openmetrics=True))
            assert seen["/items/{id}", "0.025"].labels == {"trace_id": TRACE_B}
        finally:
            other.close()
            scraper.close()

    def test_a_forked_child_starts_without_the_parent_s_exemplars(self, tmp_path: Path) -> None:
        parent = RequestMetrics(multiprocess_dir=tmp_path)
        try:
            _record(parent, "/items/{id}", 0.02, TRACE_A, at=1.0)
            child = multiprocessing.get_context("fork").Process(target=_fork_child_reports, args=(parent,))
            child.start()
            child.join(30)
            assert child.exitcode == 0, "the child found the parent's exemplars, or recorded none of its own"
            seen = _exemplars(parent.render(openmetrics=True))
            assert seen["/items/{id}", "0.025"].labels == {"trace_id": TRACE_B}, "the child's newer one, published"
        finally:
            parent.close()


def _fork_child_reports(metrics: RequestMetrics) -> None:
    """In a forked child: nothing inherited; then one exemplar of its own, published on close."""
    if metrics.exemplars or metrics.series:
        raise SystemExit(1)
    _record(metrics, "/items/{id}", 0.02, TRACE_B, at=2.0)
    metrics.close()


class TestOpenMetricsText:
    def test_the_exposition_parses_as_openmetrics_with_its_exemplars(self) -> None:
        metrics = RequestMetrics()
        _record(metrics, "/items/{id}", 0.03, TRACE_A, at=1700000000.25)
        _record(metrics, "/items/{id}", 0.2, None)
        metrics.started("POST")
        text = metrics.render(openmetrics=True)
        assert text.endswith("\n# EOF\n")
        families = {family.name: family for family in parse_openmetrics(text)}
        assert families["http_server_requests_in_flight"].type == "gauge"
        histogram = families["http_server_request_duration_seconds"]
        assert (histogram.type, histogram.unit) == ("histogram", "seconds")
        samples = {(s.name, s.labels.get("le")): s for s in histogram.samples}
        assert samples["http_server_request_duration_seconds_count", None].value == 2
        assert samples[BUCKET, "+Inf"].value == 2
        exemplar = samples[BUCKET, "0.05"].exemplar
        assert exemplar is not None
        assert exemplar.labels == {"trace_id": TRACE_A}
        assert exemplar.value == 0.03
        assert exemplar.timestamp is not None
        assert float(exemplar.timestamp) == 1700000000.25
        assert [le for (_, le), s in samples.items() if s.exemplar is not None] == ["0.05"]

    def test_counts_and_sums_agree_with_the_prometheus_text(self) -> None:
        metrics = RequestMetrics()
        for index, seconds in enumerate((0.001, 0.03, 0.3, 3.0, 30.0)):
            _record(metrics, f"/r{index % 2}", seconds, TRACE_A if index % 2 else None)
        ours = {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for f in parse_prometheus(metrics.render())
            for s in f.samples
        }
        theirs = {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for f in parse_openmetrics(metrics.render(openmetrics=True))
            for s in f.samples
        }
        assert ours == theirs

    def test_label_values_are_escaped(self) -> None:
        metrics = RequestMetrics()
        route = 'a\\b"c\nd'
        _record(metrics, route, 0.01, TRACE_A)
        assert _exemplars(metrics.render(openmetrics=True))[route, "0.01"].labels == {"trace_id": TRACE_A}
        # prometheus_client's parser cannot read escapes inside an exemplar's labels; the spec's ABNF allows them.
        metrics = RequestMetrics()
        _record(metrics, "/plain", 0.01, 'id"with\\quotes')
        [line] = [line for line in metrics.render(openmetrics=True).splitlines() if " # " in line]
        assert line.endswith(' # {trace_id="id\\"with\\\\quotes"} 0.01 100.0')

    @pytest.mark.parametrize(
        "spelled",
        # The spec's examples of canonical renderings ("Considerations: Canonical Numbers" and the histogram example),
        # less 0.0, which is no bound; then one with more digits past 1e6.
        [
            *("0.001", "0.002", "0.01", "0.1", "0.9", "0.95", "0.99", "0.999", "1.0", "1.7", "10.0"),
            *("1e-10", "1e-09", "1e-05", "0.0001", "100000.0", "1e+06", "1e+10", "1e+23", "1.1e+23", "1.234567e+06"),
        ],
    )
    def test_le_values_are_canonical_numbers(self, spelled: str) -> None:
        assert canonical_number(float(spelled)) == spelled

    def test_infinity_is_plus_inf(self) -> None:
        assert canonical_number(float("inf")) == "+Inf"


class TestNegotiation:
    @pytest.mark.parametrize(
        ("accept", "openmetrics"),
        [
            (PROMETHEUS_ACCEPT, True),
            ("application/openmetrics-text", True),
            ("application/openmetrics-text; version=0.0.1", True),
            ('Application/OpenMetrics-Text; Version="1.0.0"; charset=utf-8', True),
            ("text/plain;q=0.5, application/openmetrics-text", True),
            ("", False),
            ("*/*", False),
            ("text/plain; version=0.0.4", False),
            ("application/openmetrics-text;q=0", False),
            ("application/openmetrics-text;q=banana", False),
            ("application/openmetrics-text;q=7", False),
            ("application/openmetrics-text;version=2.0.0", False),
            ("text/plain, application/openmetrics-text;q=0.5", False),
            ("application/json", False),
        ],
    )
    def test_openmetrics_only_when_asked_for_at_least_as_much_as_text(self, accept: str, openmetrics: bool) -> None:
        assert accepts_openmetrics(accept) is openmetrics


async def _item(request: Request) -> Response:
    return PlainTextResponse("item")


def _app() -> Starlette:
    return Starlette(routes=[Route("/items/{id}", _item)])


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _traceparent(trace_id: str, *, sampled: bool = True) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-{'01' if sampled else '00'}"}


@pytest.mark.anyio
@pytest.mark.usefixtures("middleware_path")
class TestMiddleware:
    async def test_a_sampled_request_s_trace_id_is_served_to_openmetrics_scrapers(self) -> None:
        metrics = RequestMetrics()
        inner = ObservabilityMiddleware(_app(), metrics=metrics, exemplars=sampled_trace_id)
        app = traced(inner, tracer_provider(service_name="t", sample_ratio=0.0))
        async with _client(app) as client:
            await client.get("/items/1")
            await client.get("/items/2", headers=_traceparent(TRACE_B, sampled=False))
            assert _exemplars((await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})).text) == {}
            await client.get("/items/3", headers=_traceparent(TRACE_A))
            scrape = await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
            plain = await client.get("/metrics")
        assert scrape.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
        [(route, _), exemplar] = next(iter(_exemplars(scrape.text).items()))
        assert route == "/items/{id}"
        assert exemplar.labels == {"trace_id": TRACE_A}
        assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert plain.text == metrics.render()
        assert "trace_id" not in plain.text

    async def test_with_tracing_off_no_exemplar_appears(self) -> None:
        metrics = RequestMetrics()
        app = ObservabilityMiddleware(_app(), metrics=metrics, exemplars=sampled_trace_id)  # no span: no id
        async with _client(app) as client:
            await client.get("/items/1", headers=_traceparent(TRACE_A))
            scrape = await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
        assert _exemplars(scrape.text) == {}
        assert " # {" not in scrape.text
        assert metrics.exemplars == {}

    async def test_instrument_app_records_exemplars_only_when_asked(self) -> None:
        provider = tracer_provider(service_name="t", sample_ratio=1.0)
        found = []
        for exemplars in (False, True):
            metrics = RequestMetrics()
            app = traced(instrument_app(_app(), metrics=metrics, access_log=False, exemplars=exemplars), provider)
            async with _client(app) as client:
                await client.get("/items/1")
                found.append(_exemplars((await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})).text))
        assert found[0] == {}
        assert len(found[1]) == 1

    def test_instrument_app_says_when_the_tracing_extra_is_missing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "overdrive.observability.tracing", None)  # the import now fails
        with pytest.raises(ConfigurationError, match=r"overdrive\[tracing\]"):
            instrument_app(_app(), access_log=False, exemplars=True)

    def test_the_getter_gives_no_id_outside_a_sampled_span(self) -> None:
        assert sampled_trace_id() is None
        provider = tracer_provider(service_name="t", sample_ratio=0.0)
        with provider.get_tracer("t").start_as_current_span("unsampled"):
            assert sampled_trace_id() is None
        with tracer_provider(service_name="t", sample_ratio=1.0).get_tracer("t").start_as_current_span("sampled") as s:
            assert sampled_trace_id() == format(s.get_span_context().trace_id, "032x")


# ---------------------------------------------------------------- a real Prometheus


def _wait(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"Timed out waiting for {what}.")


def _prometheus_command(directory: Path, port: int, target: int) -> list[str]:
    config = {
        "global": {"scrape_interval": "500ms", "scrape_timeout": "400ms"},
        "scrape_configs": [{"job_name": "exemplars", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    return [
        "prometheus",
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=exemplar-storage",
        "--log.level=warn",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_prometheus_stores_the_trace_id_of_a_sampled_request_as_an_exemplar() -> None:
    """uvicorn with two workers and tracing on; Prometheus scrapes it and answers query_exemplars with our trace id."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: run `scripts/install-system-deps prometheus` (scripts/test does it).")
    trace_id = secrets.token_hex(16)
    app_port, prometheus_port = free_port(), free_port()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="overdrive-exemplars-") as folder:
        directory = Path(folder)
        env = {**os.environ, METRICS_DIR_ENV: str(directory / "metrics"), "PYTHONPATH": str(Path.cwd())}
        server_command = [
            sys.executable, "-m", "uvicorn", "tests.observability.exemplar_app:app", "--workers", "2",
            "--host", "127.0.0.1", "--port", str(app_port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        server = subprocess.Popen(server_command, env=env, start_new_session=True)
        prometheus = subprocess.Popen(
            _prometheus_command(directory, prometheus_port, app_port),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        app = httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=5)
        api = httpx.Client(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=5)
        try:
            _wait(lambda: app.get("/items/0").status_code == 200, "the app")
            for item in range(20):  # not sampled (ratio 0): no exemplars
                assert app.get(f"/items/{item}").status_code == 200
            assert app.get("/items/7", headers=_traceparent(trace_id)).status_code == 200
            _wait(lambda: api.get("/-/ready").status_code == 200, "Prometheus")

            def stored() -> list[dict[str, Any]]:
                query = urllib.parse.urlencode({"query": BUCKET, "start": started - 60, "end": time.time() + 60})
                answer = api.get(f"/api/v1/query_exemplars?{query}").json()
                assert answer["status"] == "success", answer
                data: list[dict[str, Any]] = answer["data"]
                return data

            [series] = _wait(stored, "the exemplar in Prometheus")
            [exemplar] = series["exemplars"]
            assert exemplar["labels"] == {"trace_id": trace_id}
            labels = series["seriesLabels"]
            assert (labels["job"], labels["route"], labels["status"]) == ("exemplars", "/items/{item_id}", "2xx")
            assert 0 < float(exemplar["value"]) <= float(labels["le"])
            assert started - 1 <= exemplar["timestamp"] <= time.time()
        finally:
            app.close()
            api.close()
            _stop(prometheus)
            _stop(server)
