"""The load engine against real loopback servers: HTTP framing, faults, bounds, both models, multi-process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httptools
import pytest

from overdrive.exceptions import ConfigurationError, LoadTestError
from overdrive.loadtest._engine import ClosedConnection, ClosedEngine, plain_ok
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

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/split", id="split across reads"),
            pytest.param("/lower", id="lower-case header names"),
            pytest.param("/counter", id="a different body every time"),
            pytest.param("/early-hints", id="a 103 before the 200"),
        ],
    )
    def test_every_200_is_counted_once(self, server: MisbehavingServer, path: str) -> None:
        before = server.counts[path]
        result = _run(server, path)
        assert result.completed > 20
        assert result.errors == 0
        assert result.names[0].statuses == {"200": result.completed}
        assert server.counts[path] - before == result.sent == result.completed

    @pytest.mark.parametrize(("path", "status"), [("/not-modified", "304"), ("/no-content", "204")])
    def test_statuses_without_a_body_complete(self, server: MisbehavingServer, path: str, status: str) -> None:
        before = server.counts[path]
        result = _run(server, path)
        assert result.completed > 20
        assert result.names[0].statuses == {status: result.completed}
        assert server.counts[path] - before == result.sent == result.completed

    def test_a_request_lost_to_an_idle_close_is_an_error_not_a_response(self, server: MisbehavingServer) -> None:
        """A server that closes a kept-alive connection instead of answering must not be credited a response."""
        before, closed_before = server.counts["/idle-close"], server.closed_unanswered
        result = _run(server, "/idle-close")
        closed = server.closed_unanswered - closed_before
        assert closed > 10
        assert result.completed == server.counts["/idle-close"] - before - closed
        assert result.transport_errors == {"connection closed": closed}

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

    def test_a_limit_smaller_than_the_processes_leaves_the_extra_ones_idle(self, server: MisbehavingServer) -> None:
        """One request over two workers: the worker whose share is zero sends nothing instead of running unbounded."""
        before = server.counts["/ok"]
        result = _run(server, "/ok", max_requests=1, procs=2, duration_s=10)
        assert result.sent == result.completed == 1
        assert server.counts["/ok"] - before == 1
        assert result.elapsed_s < 5

    def test_several_processes_merge_exactly(self, server: MisbehavingServer) -> None:
        before = server.counts["/ok"]
        result = _run(server, "/ok", procs=2, connections=4, duration_s=1.0)
        assert result.procs == 2
        assert len(result.cpu_utilization) == 2
        assert server.counts["/ok"] - before == result.completed == result.latency.count
        assert sum(p.requests for p in result.timeline) == result.completed


class TestWorkers:
    @pytest.mark.parametrize("how", [["main.py"], ["-m", "main"]], ids=["script", "module"])
    def test_a_spawned_worker_does_not_run_the_main_script_again(
        self, server: MisbehavingServer, tmp_path: Path, how: list[str]
    ) -> None:
        """Workers get plain data; re-running `__main__` in each (the whole CLI, for `overdrive load`) is waste."""
        marker = tmp_path / "reran"
        script = tmp_path / "main.py"
        script.write_text(
            "import pathlib, sys\n"
            "from overdrive.loadtest.runner import LoadOptions, run_load\n"
            "from overdrive.loadtest.scenario import Scenario\n"
            "if __name__ != '__main__':\n"
            f"    pathlib.Path({str(marker)!r}).write_text(__name__)\n"
            "else:\n"
            f"    result = run_load(Scenario.single({server.url + '/ok'!r}), LoadOptions(duration_s=0.3, procs=2))\n"
            "    sys.exit(0 if result.completed else 1)\n"
        )
        subprocess.run([sys.executable, *how], check=True, timeout=60, cwd=tmp_path)
        assert not marker.exists()


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

    def test_an_interim_response_is_not_counted(self, server: MisbehavingServer) -> None:
        before = server.counts["/early-hints"]
        result = _run(server, "/early-hints", rate=400.0, duration_s=1.0)
        assert result.completed > 200
        assert result.names[0].statuses == {"200": result.completed}
        assert server.counts["/early-hints"] - before == result.completed

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


# ---------------------------------------------------------------- reads, in process
_R = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 17:20:01 GMT\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"


class _Transport:
    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    abort = close


class _Fed:
    """What a closed-model connection made of a sequence of reads: the window's figures and what it sent."""

    def __init__(self, reads: list[bytes], *, keep_going: bool = True) -> None:
        self.transport = _Transport()

        async def feed() -> None:
            engine = ClosedEngine(
                host="127.0.0.1", port=1, ring=[(0, b"GET / HTTP/1.1\r\n\r\n")], names=1, open_model=False,
                timeout_ns=10**10, max_requests=None,
            )  # fmt: skip
            engine.open_connection = lambda: None  # type: ignore[method-assign]  # no sockets here
            self.connection = ClosedConnection(engine)
            self.connection.connection_made(self.transport)  # type: ignore[arg-type]
            for data in reads:
                self.connection.data_received(data)
            self.window = engine.take_window()

        asyncio.run(feed())

    @property
    def statuses(self) -> dict[int, int]:
        return self.window.status_counts()[0]

    @property
    def requests_sent(self) -> int:
        return self.transport.writes


class TestPlainOk:
    @pytest.mark.parametrize(
        "data",
        [
            _R,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH:2\r\nconnection: Keep-Alive\r\n\r\nok",
            b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        ],
    )
    def test_one_whole_200_that_keeps_the_connection_is_plain(self, data: bytes) -> None:
        assert plain_ok(data)

    def test_no_cut_of_a_response_is_plain(self) -> None:
        assert not any(plain_ok(_R[:cut]) for cut in range(len(_R)))
        assert not any(plain_ok(_R[cut:]) for cut in range(1, len(_R)))

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(_R + b"!", id="a byte more"),
            pytest.param(_R + _R, id="two responses"),
            pytest.param(_HINTS + _R, id="an interim response first"),
            pytest.param(_CHUNKED, id="chunked"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", id="TE and CL"
            ),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", id="close"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: CLOSE\r\n\r\nok", id="CLOSE"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", id="two lengths"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", id="signed length"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", id="space before colon"),
            pytest.param(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", id="folded line"),
            pytest.param(b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 2\r\n\r\nok", id="bare LF"),
            pytest.param(b"HTTP/1.1 200 OK\rX: a\r\nContent-Length: 2\r\n\r\nok", id="bare CR"),
            pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", id="bare LF after the status"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nUpgrade: h2c\r\n\r\nok", id="upgrade"),
            pytest.param(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok", id="no length"),
            pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", id="HTTP/1.0"),
            pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", id="status 2000"),
            pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", id="204"),
            pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n", id="304"),
        ],
    )
    def test_anything_else_is_left_to_the_parser(self, data: bytes) -> None:
        assert not plain_ok(data)


class TestReads:
    def test_a_repeated_plain_200_is_counted_every_time(self) -> None:
        fed = _Fed([_R] * 5)
        assert fed.connection.repeat == _R, "the second identical read is recognised"
        assert fed.statuses == {200: 5}
        assert fed.window.latency[0].count == 5
        assert fed.requests_sent == 6

    def test_a_response_cut_anywhere_between_repeats_is_counted_once(self) -> None:
        for cut in range(1, len(_R)):
            fed = _Fed([_R, _R, _R[:cut], _R[cut:], _R])
            assert (fed.statuses, fed.requests_sent, fed.connection.mid) == ({200: 4}, 5, False), cut

    def test_a_repeat_that_continues_a_cut_response_is_parsed_as_such(self) -> None:
        """Mid-response, bytes equal to the remembered 200 are not a new response but the rest of the cut one."""
        with pytest.raises(httptools.HttpParserError):
            _Fed([_R, _R, _R[:20], _R])

    def test_a_body_that_looks_like_responses_is_body(self) -> None:
        head = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % (2 * len(_R))
        fed = _Fed([head, _R, _R])
        assert (fed.statuses, fed.requests_sent) == ({404: 1}, 2)

    def test_responses_sharing_a_read_are_each_counted(self) -> None:
        fed = _Fed([_R, _R, _R + _R, _R])
        assert fed.statuses == {200: 5}
        assert fed.requests_sent == 6

    def test_an_interim_response_cut_anywhere_from_the_final_one_is_not_counted(self) -> None:
        both = _HINTS + _R
        for cut in range(len(both)):
            fed = _Fed([_R, _R, both[:cut], both[cut:]] if cut else [_R, _R, both, both])
            assert fed.statuses == {200: 4 if not cut else 3}, cut
            assert fed.requests_sent == fed.statuses[200] + 1, cut

    @pytest.mark.parametrize(
        ("data", "status"),
        [
            (b"HTTP/1.1 204 No Content\r\n\r\n", 204),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n", 304),
            (b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno", 404),
            (_CHUNKED, 200),
        ],
    )
    def test_repeats_that_are_not_plain_200s_are_parsed_every_time(self, data: bytes, status: int) -> None:
        fed = _Fed([data] * 4)
        assert fed.connection.repeat == b""
        assert fed.statuses == {status: 4}
        assert fed.requests_sent == 5

    def test_a_repeated_close_is_never_trusted(self) -> None:
        close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        fed = _Fed([close])
        assert (fed.statuses, fed.transport.closed, fed.requests_sent) == ({200: 1}, True, 1)
        assert not plain_ok(close)

    def test_latencies_beyond_the_tally_are_recorded_too(self) -> None:
        fed = _Fed([_R, _R])
        fed.connection.sent_at -= 60 * 10**9  # as if the next answer took a minute
        fed.connection.data_received(_R)
        window = fed.connection.engine.take_window()
        assert window.status_counts()[0] == {200: 1}
        assert window.latency[0].min >= 60 * 10**6
