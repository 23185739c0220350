"""The generated alert rules: options validated, and every alert proven with the real promtool on designed traffic.

Traffic runs at one sample a minute; "k minutes into" a phase means the sample at minute ``start - 1 + k`` holds k
minutes of the new load. Each scenario keeps three days of healthy history first, so every window the burn-rate
alerts read (up to 3d) is full, as in production. The comments give the arithmetic behind each expectation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from overdrive.exceptions import ConfigurationError
from overdrive.observability.rules import alert_rules, rules_yaml
from tests.observability.promtool import Expected, Load, Traffic, alert_names, check_rules, unit_test

HISTORY = 3 * 24 * 60  # minutes of healthy traffic before each scenario's event
START = HISTORY - 1  # the last healthy sample; START + k holds k minutes of the event


def burn(kind: str, window: str, severity: str = "page", job: str = "shop") -> dict[str, str]:
    return {
        "alertname": f"Overdrive{kind.capitalize()}BudgetBurn",
        "job": job,
        "severity": severity,
        "slo": kind,
        "window": window,
    }


def route_alert(name: str, route: str, method: str = "GET", job: str = "shop") -> dict[str, str]:
    return {"alertname": name, "job": job, "method": method, "route": route, "severity": "warning"}


class TestOptions:
    def test_defaults_give_three_groups_and_the_documented_alerts(self) -> None:
        rules = alert_rules()
        assert [group["name"] for group in rules["groups"]] == [
            "overdrive-slo-ratios",
            "overdrive-route-ratios",
            "overdrive-alerts",
        ]
        assert alert_names(rules) == [
            "OverdriveAvailabilityBudgetBurn",
            "OverdriveRouteErrorsHigh",
            "OverdriveRouteLatencyHigh",
        ]
        burns = [r for r in rules["groups"][2]["rules"] if r["alert"] == "OverdriveAvailabilityBudgetBurn"]
        assert [(r["labels"]["severity"], r["labels"]["window"]) for r in burns] == [
            ("page", "1h"),
            ("page", "6h"),
            ("ticket", "3d"),
        ]
        assert "> (14.4 * 0.001)" in burns[0]["expr"]
        assert "ratio_rate5m > (14.4 * 0.001)" in burns[0]["expr"]

    def test_a_latency_slo_adds_its_ratios_and_alerts(self) -> None:
        rules = alert_rules(latency_slo=0.99, latency_threshold=0.25)
        assert "OverdriveLatencyBudgetBurn" in alert_names(rules)
        slow = [r for r in rules["groups"][0]["rules"] if r["record"].startswith("job:http_server_requests_slow")]
        assert len(slow) == 5
        assert all('le="0.25"' in r["expr"] for r in slow)

    def test_every_series_selector_carries_the_job_and_selector(self) -> None:
        rules = alert_rules(job='sh"op', selector='env=~"prod|staging"', latency_slo=0.99)
        recorded = [r["expr"] for group in rules["groups"][:2] for r in group["rules"]]
        assert recorded
        for expr in recorded:
            selectors = expr.count("http_server_request_duration_seconds_")
            assert expr.count('{job="sh\\"op",env=~"prod|staging"') == selectors, expr

    def test_the_yaml_reads_back_as_the_same_rules(self) -> None:
        rules = alert_rules(latency_slo=0.995, min_rate=0.5)
        assert yaml.safe_load(rules_yaml(rules)) == rules

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"slo": 1.0}, "must be a fraction in (0, 1)"),
            ({"slo": 0}, "must be a fraction in (0, 1)"),
            ({"slo": 0.9}, "the fast page could never fire. Use an SLO above 0.93056"),
            ({"latency_slo": 1.5}, "The latency SLO must be a fraction"),
            ({"error_ratio": 0.0}, "route error ratio must be a fraction in (0, 1]"),
            ({"min_rate": -1.0}, "zero or more requests per second"),
            (
                {"latency_threshold": 0.3},
                "bucket bounds (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)",
            ),
            ({"buckets": (0.5, 0.1)}, "positive, distinct and increasing"),
            ({"selector": "job=shop"}, "is not a list of PromQL matchers"),
        ],
    )
    def test_bad_options_are_refused_with_a_clear_message(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            alert_rules(**options)  # type: ignore[arg-type]
        assert message in str(info.value)

    def test_custom_buckets_allow_their_own_threshold(self) -> None:
        rules = alert_rules(buckets=(0.1, 0.3, 1.0), latency_threshold=0.3, latency_slo=0.99)
        assert "> 0.3\n" in rules["groups"][2]["rules"][0]["expr"]


@pytest.mark.integration
@pytest.mark.timeout(300)  # promtool evaluates every rule each minute over 3-4 simulated days: ~5-10 s each, idle
class TestPromtool:
    def test_promtool_accepts_every_variant(self, tmp_path: Path) -> None:
        variants = [
            alert_rules(),
            alert_rules(latency_slo=0.99, job="shop", selector='env!="dev",region=~"eu-.*"'),
            alert_rules(slo=0.95, latency_threshold=1.0, latency_slo=0.95, min_rate=0, error_ratio=1),
        ]
        for index, rules in enumerate(variants):
            path = tmp_path / f"rules{index}.yml"
            path.write_text(rules_yaml(rules))
            report = check_rules(path)
            count = sum(len(group["rules"]) for group in rules["groups"])
            assert f"SUCCESS: {count} rules found" in report

    def test_a_fast_burn_pages_within_ten_minutes_and_resets_when_errors_stop(self, tmp_path: Path) -> None:
        # 10 requests/s; then 10% fail for 40 minutes; then healthy again. Another job fails all along.
        healthy, burst = Load("/items/{id}", ok=600), Load("/items/{id}", ok=540, errors=60)
        other = Load("/batch", errors=100, job="batch")
        traffic = Traffic().then(HISTORY, healthy, other).then(40, burst, other).then(60, healthy, other)
        errors = route_alert("OverdriveRouteErrorsHigh", "/items/{id}")
        expected = {
            START: [],
            # 1h share = k/600: 7 minutes -> 1.17%, under 14.4 x 0.1% = 1.44%. The route's 5xx alert is pending
            # (5m share over 5% from k=3, for 5m), not firing.
            START + 7: [],
            # k=10: 1h 1.67% and 5m 10% > 1.44% -> page; the route alert fires (pending since k=3).
            START + 10: [burn("availability", "1h"), errors],
            # k=25: 6h share = k/3600 = 0.69% > 6 x 0.1% and 30m 10% -> the 6h page too. 3d share = k/43200
            # stays under 0.1% for the whole burst (crossing at k=43.2), so no ticket.
            START + 25: [burn("availability", "1h"), burn("availability", "6h"), errors],
            # 6 minutes after the errors stopped, the 5m share is 0: the 1h page resets although the 1h share is
            # still 4%. The 6h page holds while its 30m window still holds errors (8%; 6h share 1.1%)...
            START + 46: [burn("availability", "6h")],
            # ...and resets once the 30m window is clean. The other job's errors never alerted (--job shop).
            START + 75: [],
        }
        unit_test(tmp_path, alert_rules(job="shop"), traffic, expected)

    def test_one_failure_in_a_quiet_hour_pages_only_without_the_traffic_guard(self, tmp_path: Path) -> None:
        # One request a minute (0.017/s), and one of them fails: 1h share 1/60 = 1.67% > 1.44%, 5m share 20%.
        quiet, failure = Load("/items/{id}", ok=1), Load("/items/{id}", errors=1)
        traffic = Traffic().then(HISTORY, quiet).then(1, failure).then(10, quiet)
        guarded: Expected = {START: [], START + 2: []}
        unit_test(tmp_path / "guarded", alert_rules(), traffic, guarded)
        unguarded = {START: [], START + 2: [burn("availability", "1h")]}
        unit_test(tmp_path / "unguarded", alert_rules(min_rate=0.01), traffic, unguarded)

    def test_a_slow_burn_opens_a_ticket_after_36_hours_and_never_pages(self, tmp_path: Path) -> None:
        # 1,000 requests a minute; then 0.2% fail (a 2x burn). 3d share = 2k / 4,320,000 crosses 0.1% at k=2160.
        traffic = Traffic().then(HISTORY, Load("/items/{id}", ok=1000))
        traffic.then(2300, Load("/items/{id}", ok=998, errors=2))
        expected = {
            START + 600: [],  # the 6h share (0.2%) is over 0.1% already, but the 3d one is not
            START + 2100: [],  # 3d share 0.097%
            START + 2220: [burn("availability", "3d", "ticket")],  # 3d share 0.103%; 0.2% never reaches a page
        }
        unit_test(tmp_path, alert_rules(), traffic, expected)

    def test_slow_requests_fire_p95_for_one_route_and_burn_the_latency_budget(self, tmp_path: Path) -> None:
        # /slow: 10% of its requests over 0.5 s -> p95 = 0.58 s. /fast: 4% -> p95 inside the 0.05 s bucket.
        # /rare: every request slow, but one a minute, under the 0.1/s guard. Latency SLO 99% (budget 1%).
        history = [Load("/slow", ok=600), Load("/fast", ok=600), Load("/rare", slow=1)]
        slow = [Load("/slow", ok=540, slow=60), Load("/fast", ok=576, slow=24), Load("/rare", slow=1)]
        traffic = Traffic().then(HISTORY, *history).then(700, *slow)
        p95 = route_alert("OverdriveRouteLatencyHigh", "/slow")
        # The job's slow share: 1/1201 before, 85/1201 = 7.08% after; 6h share at k = (84k + 360) / 432360.
        expected = {
            START: [],
            START + 10: [p95],  # /slow's 5m p95 crossed 0.5 s at k=3, firing after 5m
            START + 290: [p95],  # 6h share 5.72% < 6%
            START + 320: [p95, burn("latency", "6h")],  # 6h share 6.30%; 7.08% never reaches 14.4%
            # 3d share (84k + 4320) / 5188320 = 1.06% > 1% at k=600 -> ticket.
            START + 600: [p95, burn("latency", "6h"), burn("latency", "3d", "ticket")],
        }
        unit_test(tmp_path, alert_rules(latency_slo=0.99), traffic, expected)
