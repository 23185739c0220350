"""The load engine against real loopback servers: HTTP framing, faults, bounds, both models, multi-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from overdrive.exceptions import ConfigurationError, LoadTestError
from overdrive.loadtest.result import LoadResult
from overdrive.loadtest.runner import LoadOptions, Stage, run_load
from overdrive.loadtest.scenario import RequestTemplate, Scenario
from tests.loadtest.servers import MisbehavingServer, misbehaving_server


@pytest.fixture(scope="module")
def server() -> Iterator[MisbehavingServer]:
    with misbehaving_server() as running:
        yield running


def _run(server: MisbehavingServer, path: str, **options: object) -> LoadResult:
    settings: dict[str, object] = {"connections": 4, "duration_s": 0.6, "procs": 1, **options}
    return run_load(Scenario.single(server.url + path), LoadOptions(**settings))  # type: ignore[arg-type]


class TestFraming:
    def test_content_length_responses_on_keep_alive(self, server: MisbehavingServer) -> None:
        before = server.counts["/ok"]
        result = _run(server, "/ok")
        assert result.completed > 100
        assert result.errors == 0
        assert result.names[0].statuses == {"200": result.completed}
        assert server.counts["/ok"] - before == result.sent == result.completed
        assert result.latency.count == result.completed

    def test_chunked_responses(self, server: MisbehavingServer) -> None:
        result = _run(server, "/chunked")
        assert result.completed > 100
        assert result.errors == 0

    def test_connection_close_is_followed_by_a_new_connection(self, server: MisbehavingServer) -> None:
        result = _run(server, "/close")
        assert result.completed > 20, "each answer closes the connection; the engine reconnects and goes on"
        assert result.errors == 0

    def test_a_body_delimited_by_close_completes(self, server: MisbehavingServer) -> None:
        result = _run(server, "/eof")
        assert result.completed > 20
        assert result.errors == 0

    def test_redirects_are_not_followed(self, server: MisbehavingServer) -> None:
        before_ok = server.counts["/ok"]
        result = _run(server, "/redirect")
        assert result.names[0].statuses == {"302": result.completed}
        assert server.counts["/ok"] == before_ok
        assert result.errors == 0

    def test_error_statuses_count_as_errors(self, server: MisbehavingServer) -> None:
        result = _run(server, "/status/503")
        assert result.http_errors == result.completed > 0
        assert result.metrics()["errors"] == 1.0

    def test_latency_is_per_request_whatever_the_status_mix(self, server: MisbehavingServer) -> None:
        """A rare 201 among 200s is timed from its own send, not from an earlier request on its connection."""
        scenario = Scenario(
            server.url,
            [RequestTemplate("/ok", name="ok", weight=100), RequestTemplate("/status/201", name="created")],
        )
        result = run_load(scenario, LoadOptions(connections=2, duration_s=2.0, procs=1))
        by_name = {n.name: n for n in result.names}
        created, ok = by_name["created"], by_name["ok"]
        assert created.requests > 20
        # Both are answered at once; had the 201s been timed from the connection's previous slow-path send, they
        # would carry the time of the ~100 requests before them.
        assert created.latency.percentiles["p50"] < 10 * ok.latency.percentiles["p50"] + 1.0


class TestFaults:
    def test_resets_are_counted_and_the_run_goes_on(self, server: MisbehavingServer) -> None:
        result = _run(server, "/reset")
        assert sum(result.transport_errors.values()) > 10
        assert result.completed > 2 * sum(result.transport_errors.values()) * 0.9

    def test_unparsable_responses_are_counted_and_the_run_goes_on(self, server: MisbehavingServer) -> None:
        before = server.counts["/garbage"]
        result = _run(server, "/garbage")
        assert result.completed == 0
        assert result.transport_errors.get("invalid response", 0) >= 4
        assert server.counts["/garbage"] - before >= result.transport_errors["invalid response"]

    def test_hung_requests_time_out_and_the_run_stops_by_itself(self, server: MisbehavingServer) -> None:
        result = _run(server, "/hang", timeout_s=0.3, duration_s=1.0)
        assert result.completed == 0
        assert result.transport_errors.get("timeout", 0) + result.unanswered >= 4
        assert result.errors > 0

    def test_an_unreachable_target_fails_fast(self) -> None:
        with pytest.raises(LoadTestError, match=r"Cannot connect to 127\.0\.0\.1:9"):
            run_load(Scenario.single("http://127.0.0.1:9/"), LoadOptions(duration_s=1, procs=1))

    def test_targets_off_this_machine_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="only loopback targets"):
            run_load(Scenario.single("http://192.0.2.1/"), LoadOptions(duration_s=1, procs=1))


class TestBounds:
    def test_a_request_limit_is_exact(self, server: MisbehavingServer) -> None:
        before = server.counts["/ok"]
        result = _run(server, "/ok", max_requests=500, duration_s=30)
        assert result.sent == result.completed == 500
        assert server.counts["/ok"] - before == 500
        assert result.elapsed_s < 30

    def test_several_processes_merge_exactly(self, server: MisbehavingServer) -> None:
        before = server.counts["/ok"]
        result = _run(server, "/ok", procs=2, connections=4, duration_s=1.0)
        assert result.procs == 2
        assert len(result.cpu_utilization) == 2
        assert server.counts["/ok"] - before == result.completed == result.latency.count
        assert sum(p.requests for p in result.timeline) == result.completed


class TestOpenModel:
    def test_the_schedule_fixes_how_many_requests_are_due(self, server: MisbehavingServer) -> None:
        result = _run(server, "/ok", rate=400.0, duration_s=1.5)
        assert result.model == "open"
        assert result.sent + result.dropped == pytest.approx(600, abs=1)
        assert result.service is not None
        assert result.service.count == result.completed

    def test_a_ramp_sends_the_area_under_the_rate_curve(self, server: MisbehavingServer) -> None:
        result = _run(server, "/ok", rate=0.0, stages=(Stage(1.0, 400.0), Stage(0.5, 400.0)))
        assert result.sent + result.dropped == pytest.approx(200 + 200, abs=2)
        assert result.target_rate == pytest.approx(400 / 1.5)

    def test_requests_are_named_per_template(self, server: MisbehavingServer) -> None:
        scenario = Scenario(
            server.url,
            [
                RequestTemplate("/ok", name="fine", weight=3),
                RequestTemplate("/status/{code}", name="broken", values={"code": lambda rng: 500}),
            ],
        )
        result = run_load(scenario, LoadOptions(connections=2, duration_s=0.6, procs=1))
        by_name = {n.name: n for n in result.names}
        assert by_name["fine"].errors == 0
        assert by_name["broken"].errors == by_name["broken"].requests > 0
        assert by_name["fine"].requests > by_name["broken"].requests
        assert LoadResult.from_json(result.to_json()) == result
