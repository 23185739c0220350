"""Read the statements to advise on: an ``overdrive db report --json`` file, or a .sql file of statements."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from overdrive.db.sample import QuerySample
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["REPORT_SCHEMA", "LoadedQueries", "NamedQuery", "load_queries", "split_statements"]

REPORT_SCHEMA = "overdrive.db.report/1"
_PIECE = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|;|[^'";/-]+|.""", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class NamedQuery:
    """A statement and how to refer to it: a report's fingerprint, or "statement N" of a .sql file."""

    label: str
    sample: QuerySample


@dataclass(frozen=True, kw_only=True)
class LoadedQueries:
    """The statements of a file, heaviest first for a report, and whether their literals are real constants."""

    queries: tuple[NamedQuery, ...]
    literals_are_constants: bool
    dialect: str | None = None


def split_statements(text: str) -> list[str]:
    """Split SQL text at the semicolons that are outside quotes and comments; empty statements are dropped."""
    statements: list[str] = []
    current: list[str] = []
    for piece in _PIECE.findall(text):
        if piece == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(piece)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return not re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.DOTALL).strip()


def load_queries(path: Path, top: int) -> LoadedQueries:
    """Load at most `top` statements from a report (``.json``) or a SQL file (``.sql``).

    Raises:
        ConfigurationError: the file cannot be read or is neither a valid report nor SQL.

    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Cannot read the queries file {path}: {exc}."
        raise ConfigurationError(msg) from exc
    if path.suffix.lower() == ".sql":
        statements = split_statements(text)
        if not statements:
            msg = f"{path} holds no SQL statement."
            raise ConfigurationError(msg)
        named = [NamedQuery(label=f"statement {n}", sample=QuerySample(s)) for n, s in enumerate(statements, 1)]
        return LoadedQueries(queries=tuple(named[:top]), literals_are_constants=False)
    if path.suffix.lower() == ".json":
        return _report(path, text, top)
    msg = f"{path} is neither a report (.json, from `overdrive db report --json`) nor SQL statements (.sql)."
    raise ConfigurationError(msg)


def _report(path: Path, text: str, top: int) -> LoadedQueries:
    try:
        report = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON: {exc}."
        raise ConfigurationError(msg) from exc
    if (
        not isinstance(report, dict)
        or report.get("schema") != REPORT_SCHEMA
        or not isinstance(report.get("queries"), list)
    ):
        msg = f"{path} is not an `overdrive db report --json` file (schema {REPORT_SCHEMA} with a queries list)."
        raise ConfigurationError(msg)
    entries = sorted(report["queries"], key=lambda q: -float(q.get("total_ms", 0)) if isinstance(q, dict) else 0)
    named = [_entry(path, number, entry) for number, entry in enumerate(entries[:top], 1)]
    dialect = report.get("dialect")
    return LoadedQueries(
        queries=tuple(named), literals_are_constants=True, dialect=dialect if isinstance(dialect, str) else None
    )


def _entry(path: Path, number: int, entry: Any) -> NamedQuery:
    example = entry.get("example") if isinstance(entry, dict) else None
    statement = example.get("statement") if isinstance(example, dict) else None
    parameters = example.get("parameters") if isinstance(example, dict) else None
    if not isinstance(statement, str) or not isinstance(parameters, list | dict | None):
        msg = f"Query {number} of {path} has no example statement with list, object or null parameters."
        raise ConfigurationError(msg)
    label = entry.get("fingerprint") or f"query {number}"
    sample = QuerySample(statement, tuple(parameters) if isinstance(parameters, list) else parameters)
    return NamedQuery(label=str(label), sample=sample)
