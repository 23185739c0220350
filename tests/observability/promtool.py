"""Drive the real `promtool`: check rule files, and unit-test rules against synthetic traffic.

`Traffic` describes requests per minute in phases and writes them as the series our exposition emits (a histogram
per job, route, method and status class); `unit_test` runs ``promtool test rules`` on a rules dict with alert
expectations at chosen minutes, expecting every alert of the file (so an alert that should stay quiet is checked too).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from overdrive.observability import RequestMetrics, names
from overdrive.observability.rules import rules_yaml

FAST = 0.04  # seconds: a fast request (lands in the 0.05 bucket)
SLOW = 0.8  # seconds: a slow request (over the 0.5 s threshold, in the 1.0 bucket)
INSTALL_HINT = "promtool is missing: run `scripts/install-system-deps prometheus` (scripts/test does it for you)."


def promtool() -> str:
    """The promtool binary; fails (never skips) when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(INSTALL_HINT)
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with these arguments and capture its output."""
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def check_rules(path: Path) -> str:
    """``promtool check rules`` must accept the file; returns its report."""
    result = run("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def exposition_le_values() -> list[str]:
    """The ``le`` label values, exactly as our exposition spells them (``1.0``, not ``1``), +Inf last."""
    metrics = RequestMetrics()
    metrics.started("GET")
    metrics.finished("GET", "/x", 200, FAST)
    return re.findall(r'le="([^"]+)"', metrics.render())


@dataclass(frozen=True)
class Load:
    """Requests per minute on one route during a phase: fast 2xx, slow 2xx, and fast 5xx."""

    route: str
    ok: int = 0
    slow: int = 0
    errors: int = 0
    method: str = "GET"
    job: str = "shop"


@dataclass
class Traffic:
    """Phases of constant per-minute load, one sample a minute from time 0, as cumulative counter series."""

    phases: list[tuple[int, list[Load]]] = field(default_factory=list)

    def then(self, minutes: int, *loads: Load) -> Traffic:
        """Add a phase of `minutes` samples with these loads (routes absent from it get no requests)."""
        self.phases.append((minutes, list(loads)))
        return self

    @property
    def minutes(self) -> int:
        return sum(minutes for minutes, _ in self.phases)

    def input_series(self) -> list[dict[str, str]]:
        """promtool ``input_series``: every count and bucket series, in expanding notation per phase."""
        keys = sorted({(load.job, load.route, load.method) for _, loads in self.phases for load in loads})
        out: list[dict[str, str]] = []
        for job, route, method in keys:
            for status in ("2xx", "5xx"):
                if not any(
                    self._per_minute(load, status, None)
                    for _, loads in self.phases
                    for load in loads
                    if (load.job, load.route, load.method) == (job, route, method)
                ):
                    continue  # like the middleware, no series for a status class never seen
                labels = f'job="{job}",method="{method}",route="{route}",status="{status}"'
                name = names.HTTP_REQUEST_DURATION
                out.append({"series": f"{name}_count{{{labels}}}", "values": self._values(job, route, method, status)})
                for le in exposition_le_values():
                    bound = float(le)  # +Inf parses as inf
                    out.append(
                        {
                            "series": f'{name}_bucket{{{labels},le="{le}"}}',
                            "values": self._values(job, route, method, status, bound),
                        }
                    )
        return out

    def _values(self, job: str, route: str, method: str, status: str, bound: float | None = None) -> str:
        segments: list[str] = []
        total = 0
        for minutes, loads in self.phases:
            step = sum(
                self._per_minute(load, status, bound)
                for load in loads
                if (load.job, load.route, load.method) == (job, route, method)
            )
            if not segments:
                segments.append(f"{total}+{step}x{minutes - 1}")
                total += step * (minutes - 1)
            else:
                segments.append(f"{total + step}+{step}x{minutes - 1}")
                total += step * minutes
        return " ".join(segments)

    @staticmethod
    def _per_minute(load: Load, status: str, bound: float | None) -> int:
        if status == "5xx":
            return load.errors if bound is None or bound >= FAST else 0
        fast = load.ok if bound is None or bound >= FAST else 0
        slow = load.slow if bound is None or bound >= SLOW else 0
        return fast + slow


Expected = dict[int, list[dict[str, str]]]  # minute -> labels of each firing alert (alertname included)


def alert_names(rules: dict[str, Any]) -> list[str]:
    return sorted({rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule})


def _annotations(rules: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """The annotations promtool will render for an alert with these labels (templates use only $labels)."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == labels["alertname"] and rule["labels"].items() <= labels.items():
                rendered = {}
                for key, template in rule["annotations"].items():
                    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
                    assert "{{" not in text, f"unexpected template in {template!r}"
                    rendered[key] = text
                return rendered
    msg = f"no rule matches the expected alert {labels}"
    raise AssertionError(msg)


def unit_test(tmp_path: Path, rules: dict[str, Any], traffic: Traffic, expected: Expected) -> None:
    """Run ``promtool test rules``: at each minute of `expected`, exactly those alerts fire, no others."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "rules.yml").write_text(rules_yaml(rules))
    checks = []
    for minute, alerts in sorted(expected.items()):
        assert minute < traffic.minutes, "evaluate only where there is data"
        for name in alert_names(rules):
            firing = [dict(labels) for labels in alerts if labels["alertname"] == name]
            checks.append(
                {
                    "eval_time": f"{minute}m",
                    "alertname": name,
                    "exp_alerts": [
                        {
                            "exp_labels": {k: v for k, v in labels.items() if k != "alertname"},
                            "exp_annotations": _annotations(rules, labels),
                        }
                        for labels in firing
                    ],
                }
            )
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": traffic.input_series(), "alert_rule_test": checks}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
