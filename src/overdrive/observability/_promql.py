"""Small PromQL builders shared by the alert rules and the dashboard: label matchers and number formatting."""

from __future__ import annotations

import re

from overdrive.exceptions import ConfigurationError

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\\n]|\\.)*)"\s*')


def parse_selector(selector: str) -> tuple[str, ...]:
    """Split ``job="shop",env=~"prod|staging"`` (braces optional) into normalised matchers; reject anything else."""
    text = selector.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    matchers: list[str] = []
    position = 0
    while text[position:].strip():
        found = _MATCHER.match(text, position)
        if found is None or not (found.end() == len(text) or text[found.end()] == ","):
            msg = (
                f"The label selector {selector!r} is not a list of PromQL matchers "
                '(name="value", name!="value", name=~"regex" or name!~"regex", separated by commas).'
            )
            raise ConfigurationError(msg)
        name, operator, value = found.groups()
        matchers.append(f'{name}{operator}"{value}"')
        position = found.end() + 1
    return tuple(matchers)


def job_matcher(job: str) -> str:
    """An exact matcher on the ``job`` label, quoting the name safely."""
    escaped = job.replace("\\", "\\\\").replace('"', '\\"')
    return f'job="{escaped}"'


def series(name: str, *matchers: str) -> str:
    """A vector selector: ``name{m1,m2}``, or the bare name without matchers."""
    return f"{name}{{{','.join(matchers)}}}" if matchers else name


def number(value: float) -> str:
    """A float as PromQL and Prometheus label values spell it (``0.5``, ``1.0``): the shortest exact repr."""
    return repr(float(value))
