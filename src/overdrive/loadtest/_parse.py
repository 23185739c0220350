"""Parsing of the load CLI's loose inputs: durations, stages and headers, once, at the edge."""

from __future__ import annotations

import re

from overdrive.exceptions import ConfigurationError
from overdrive.loadtest.runner import Stage

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``500ms``, ``30s``, ``2m``, ``1h`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        msg = f"Cannot read {text!r} as a duration; write e.g. 500ms, 30s, 2m or 1h."
        raise ConfigurationError(msg)
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_stage(text: str) -> Stage:
    """A ramp ``DURATION:RATE``, e.g. ``30s:2000`` (reach 2000 req/s over 30 s)."""
    duration, sep, rate = text.partition(":")
    if not sep:
        msg = f"A stage is DURATION:RATE, e.g. 30s:2000, not {text!r}."
        raise ConfigurationError(msg)
    try:
        target = float(rate)
    except ValueError as exc:
        msg = f"The rate in stage {text!r} is not a number."
        raise ConfigurationError(msg) from exc
    return Stage(parse_duration(duration), target)


def parse_header(text: str) -> tuple[str, str]:
    """A header ``Name: value``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \r\n\t") or "\r" in value or "\n" in value:
        msg = f"A header is 'Name: value' with no line breaks, not {text!r}."
        raise ConfigurationError(msg)
    return name.strip(), value.strip()
