"""`overdrive observability rules|dashboard`: files promtool and Grafana accept, and clear refusals of bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from overdrive.cli import main
from overdrive.observability import alert_rules, dashboard
from tests.observability.promtool import check_rules


class TestRulesCommand:
    def test_stdout_holds_the_same_rules_as_the_python_api(self) -> None:
        result = CliRunner().invoke(main, ["observability", "rules", "--slo", "0.995", "--job", "shop"])
        assert result.exit_code == 0, result.output
        assert yaml.safe_load(result.output) == alert_rules(slo=0.995, job="shop")

    @pytest.mark.integration
    def test_the_output_file_passes_promtool(self, tmp_path: Path) -> None:
        path = tmp_path / "overdrive.rules.yml"
        args = [
            "observability", "rules", "--latency-slo", "0.99", "--latency-threshold", "0.25", "--min-rate", "1",
            "--selector", 'env="prod"', "--buckets", "0.05,0.25,1", "--output", str(path),
        ]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert result.output == ""
        rules = yaml.safe_load(path.read_text())
        expected = alert_rules(
            latency_slo=0.99, latency_threshold=0.25, min_rate=1, selector='env="prod"', buckets=(0.05, 0.25, 1.0)
        )
        assert rules == expected
        check_rules(path)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--slo", "1"], "The availability SLO must be a fraction in (0, 1)"),
            (["--latency-threshold", "0.3"], "must be one of the histogram bucket bounds (0.005, 0.01,"),
            (["--buckets", "0.1,0.3", "--latency-threshold", "0.5"], "bucket bounds (0.1, 0.3), not 0.5"),
            (["--buckets", "fast"], "is not a comma-separated list of seconds"),
            (["--selector", "env=prod"], "is not a list of PromQL matchers"),
            (["--min-rate", "-1"], "zero or more requests per second"),
        ],
    )
    def test_bad_options_exit_2_with_a_clear_message_and_write_nothing(
        self, tmp_path: Path, args: list[str], message: str
    ) -> None:
        path = tmp_path / "rules.yml"
        result = CliRunner().invoke(main, ["observability", "rules", *args, "-o", str(path)])
        assert result.exit_code == 2
        assert message in " ".join(result.output.split())
        assert not path.exists()


class TestDashboardCommand:
    def test_the_output_file_is_the_dashboard_json(self, tmp_path: Path) -> None:
        path = tmp_path / "overdrive.json"
        args = [
            "observability",
            "dashboard",
            "--latency-slo",
            "0.99",
            "--title",
            "Shop",
            "--uid",
            "shop",
            "-o",
            str(path),
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert json.loads(path.read_text()) == dashboard(latency_slo=0.99, title="Shop", uid="shop")

    def test_a_bad_threshold_is_refused(self) -> None:
        result = CliRunner().invoke(main, ["observability", "dashboard", "--latency-threshold", "2"])
        assert result.exit_code == 2
        assert "must be one of the histogram bucket bounds" in result.output
