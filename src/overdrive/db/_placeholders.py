"""Inline bound parameters into a statement as SQL literals, whatever the driver's paramstyle.

Placeholders are found by a scanner that skips quoted strings, quoted identifiers and comments, so a ``?``
or ``:name`` inside a literal is never touched, and PostgreSQL's ``::`` casts are not taken for names.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from overdrive.db.sample import Parameters, QuerySample

__all__ = ["inline", "render_literal"]

_TOKEN = re.compile(
    r"""
      (?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)
    | (?P<cast>::)
    | (?P<pct>%%)
    | \$(?P<dollar>\d+)
    | %\((?P<pyformat>[^)]+)\)s
    | (?P<format>%s)
    | (?P<qmark>\?)
    | (?<![\w:]):(?P<named>[A-Za-z_]\w*)
    """,
    re.VERBOSE | re.DOTALL,
)


def render_literal(value: Any) -> str:
    """Render a Python value as a SQL literal both PostgreSQL and SQLite read back as the same value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return repr(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, datetime | date | time):
        return _quote(value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat())
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex() + "'"
    return _quote(str(value))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def inline(sample: QuerySample) -> str:
    """Return ``sample.statement`` with every placeholder replaced by its value as a literal.

    Raises:
        ValueError: a placeholder has no value among the sample's parameters.

    """
    parameters = sample.parameters
    position = 0
    uses_percent = False

    def replace(match: re.Match[str]) -> str:
        nonlocal position, uses_percent
        kind = match.lastgroup
        if kind in {"skip", "cast"}:
            return match.group(0)
        if kind == "pct":
            uses_percent = True
            return match.group(0)
        if kind in {"format", "qmark"}:
            uses_percent = uses_percent or kind == "format"
            position += 1
            return render_literal(_positional(parameters, position - 1))
        if kind == "dollar":
            number = int(match.group("dollar"))
            if isinstance(parameters, dict):  # a PostgreSQL log's DETAIL line: {"$1": "value", ...}
                return render_literal(_named(parameters, f"${number}"))
            return render_literal(_positional(parameters, number - 1))
        uses_percent = uses_percent or kind == "pyformat"
        return render_literal(_named(parameters, match.group(kind or "named")))

    if parameters is None or (not parameters and not isinstance(parameters, dict)):
        if any(match.lastgroup == "dollar" for match in _TOKEN.finditer(sample.statement)):
            msg = (
                "The statement has $n placeholders but the sample holds no parameter values "
                "(pg_stat_statements keeps none); capture it with the query monitor or a log with parameters."
            )
            raise ValueError(msg)
        return sample.statement
    text = _TOKEN.sub(replace, sample.statement)
    return text.replace("%%", "%") if uses_percent else text


def _positional(parameters: Parameters, index: int) -> Any:
    if isinstance(parameters, tuple | list) and 0 <= index < len(parameters):
        return parameters[index]
    msg = f"The statement has a placeholder number {index + 1} but the sample has no such parameter."
    raise ValueError(msg)


def _named(parameters: Parameters, name: str) -> Any:
    if isinstance(parameters, dict) and name in parameters:
        return parameters[name]
    msg = f"The statement has a placeholder {name!r} but the sample has no parameter of that name."
    raise ValueError(msg)
