"""Scenarios: templates, pools, the prepared ring, scenario files, and the CLI's loose inputs."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from overdrive.exceptions import ConfigurationError
from overdrive.loadtest._parse import parse_duration, parse_header, parse_stage
from overdrive.loadtest.runner import LoadOptions, Stage
from overdrive.loadtest.scenario import Choice, RequestTemplate, Scenario, Uniform, Zipf, load_scenario


class TestTemplates:
    def test_placeholders_are_filled_and_requests_encoded(self) -> None:
        template = RequestTemplate(
            "/items/{id}?q={q}",
            method="post",
            body='{{"n": {id}}}',
            headers={"X-Trace": "t-{id}", "Content-Type": "application/json"},
            values={"id": Uniform(7, 7), "q": Choice(["a b"])},
        )
        data = template.encode(random.Random(1), "localhost:81", 3).data
        head, body = data.split(b"\r\n\r\n")
        assert head.split(b"\r\n") == [
            b"POST /items/7?q=a b HTTP/1.1",
            b"Host: localhost:81",
            b"X-Trace: t-7",
            b"Content-Type: application/json",
            b"Content-Length: 8",
        ]
        assert body == b'{"n": 7}'
        assert template.display_name == "POST /items/{id}"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"path": "items"}, "must start with '/'"),
            ({"path": "/x", "method": "BREW"}, "Unsupported HTTP method"),
            ({"path": "/x", "method": "HEAD"}, "Unsupported HTTP method"),
            ({"path": "/x", "weight": 0}, "weights must be positive"),
            ({"path": "/x/{id}"}, "placeholders with no pool: id"),
        ],
    )
    def test_bad_templates_are_refused(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            RequestTemplate(**kwargs)  # type: ignore[arg-type]

    def test_a_host_header_of_ones_own_replaces_the_default(self) -> None:
        template = RequestTemplate("/", headers={"host": "shop.test"})
        data = template.encode(random.Random(1), "127.0.0.1:8000", 0).data
        assert data == b"GET / HTTP/1.1\r\nhost: shop.test\r\n\r\n"

    def test_pools_refuse_nonsense(self) -> None:
        with pytest.raises(ConfigurationError):
            Choice([])
        with pytest.raises(ConfigurationError):
            Uniform(5, 1)
        with pytest.raises(ConfigurationError):
            Zipf([])

    def test_zipf_favours_the_first_values(self) -> None:
        pool = Zipf(range(1, 1001), exponent=1.1)
        rng = random.Random(3)
        drawn = Counter(pool(rng) for _ in range(20_000))
        assert drawn[1] > drawn[10] > drawn[100]
        assert sum(drawn[v] for v in range(1, 11)) > 0.3 * 20_000


class TestScenario:
    def test_the_ring_follows_the_weights_and_differs_per_worker(self) -> None:
        scenario = Scenario(
            "http://127.0.0.1:8000/api",
            [RequestTemplate("/a", weight=3), RequestTemplate("/b", weight=1)],
        )
        ring = scenario.prepare(8_000)
        share = sum(1 for r in ring if r.name == 0) / len(ring)
        assert share == pytest.approx(0.75, abs=0.03)
        assert ring[0].data.startswith((b"GET /api/a HTTP/1.1\r\nHost: 127.0.0.1:8000", b"GET /api/b "))
        assert scenario.prepare(100, stream=0) == scenario.prepare(100, stream=0)
        assert scenario.prepare(100, stream=0) != scenario.prepare(100, stream=1)
        assert scenario.names == ["GET /a", "GET /b"]

    def test_a_fixed_request_is_encoded_once_and_pooled_ones_still_draw_every_time(self) -> None:
        scenario = Scenario(
            "http://127.0.0.1:8000",
            [RequestTemplate("/fixed"), RequestTemplate("/item/{id}", values={"id": Uniform(1, 10**9)})],
        )
        ring = scenario.prepare(2_000)
        fixed = [r.data for r in ring if r.name == 0]
        pooled = [r.data for r in ring if r.name == 1]
        assert len(fixed) > 500
        assert len(pooled) > 500
        assert len({id(data) for data in fixed}) == 1
        assert len(set(pooled)) > 0.99 * len(pooled)

    @pytest.mark.parametrize(
        "url", ["https://127.0.0.1/", "ftp://x/", "127.0.0.1:80", "http://:80/", "http://h:99999/"]
    )
    def test_bad_targets_are_refused(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            Scenario(url, [RequestTemplate("/")])

    def test_a_scenario_needs_requests(self) -> None:
        with pytest.raises(ConfigurationError, match="at least one request"):
            Scenario("http://127.0.0.1/", [])

    def test_single_keeps_braces_in_urls_literal(self) -> None:
        scenario = Scenario.single("http://127.0.0.1/x?json={a}", method="put", body=b"{}")
        data = scenario.prepare(1)[0].data
        assert data.startswith(b"PUT /x?json={a} HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert data.endswith(b"Content-Length: 2\r\n\r\n{}")

    def test_scenario_files(self, tmp_path: Path) -> None:
        good = tmp_path / "good.py"
        good.write_text(
            "from overdrive.loadtest.scenario import Scenario, RequestTemplate\n"
            "def scenario():\n    return Scenario('http://127.0.0.1:1/', [RequestTemplate('/z')])\n"
        )
        assert load_scenario(good).names == ["GET /z"]
        broken = tmp_path / "broken.py"
        broken.write_text("raise RuntimeError('nope')\n")
        with pytest.raises(ConfigurationError, match="failed to import: RuntimeError: nope"):
            load_scenario(broken)
        empty = tmp_path / "empty.py"
        empty.write_text("x = 1\n")
        with pytest.raises(ConfigurationError, match="must define `scenario`"):
            load_scenario(empty)
        with pytest.raises(ConfigurationError, match="does not exist"):
            load_scenario(tmp_path / "missing.py")


class TestParsing:
    @pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h", 3600), ("7", 7)])
    def test_durations(self, text: str, seconds: float) -> None:
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "ten", "5 days", "-3s"])
    def test_bad_durations(self, text: str) -> None:
        with pytest.raises(ConfigurationError, match="as a duration"):
            parse_duration(text)

    def test_stages_and_headers(self) -> None:
        assert parse_stage("30s:2000") == Stage(30.0, 2000.0)
        with pytest.raises(ConfigurationError, match="DURATION:RATE"):
            parse_stage("30s")
        with pytest.raises(ConfigurationError, match="not a number"):
            parse_stage("30s:fast")
        assert parse_header("X-A:  b c ") == ("X-A", "b c")
        for bad in ("nocolon", "Bad Name: x", "X: a\r\nInjected: 1"):
            with pytest.raises(ConfigurationError, match="Name: value"):
                parse_header(bad)


class TestOptions:
    def test_schedule_and_target_rate(self) -> None:
        options = LoadOptions(rate=100.0, stages=(Stage(10, 300.0), Stage(10, 300.0)), procs=1)
        assert options.open_model
        assert options.schedule() == ((10, 100.0, 300.0), (10, 300.0, 300.0))
        assert options.total_duration_s == 20
        assert options.target_rate() == pytest.approx(250.0)
        assert LoadOptions(procs=1).target_rate() is None

    def test_bad_options_are_listed_in_one_message(self) -> None:
        with pytest.raises(ConfigurationError, match="at least one connection, a positive timeout"):
            LoadOptions(connections=0, timeout_s=0, procs=1)
