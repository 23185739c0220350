"""Statement fingerprints: one identity for every execution of "the same query", whatever its values.

`normalize` turns compiled SQL into a canonical shape: comments stripped, whitespace collapsed, string and number
literals and every driver's bind placeholders (``?``, ``%s``, ``%(name)s``, ``:name``, ``$1``) replaced by ``?``,
and ``IN (...)`` lists and multi-row ``VALUES`` of any length collapsed to one form, so a lookup of 3 ids and one of
300 ids share a fingerprint. Quoted identifiers and keywords are kept as written.

`Fingerprinter` caches the result per statement string: SQLAlchemy sends the same compiled string for every
execution of a cached statement, so the hot path is one dict lookup.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["Fingerprint", "Fingerprinter", "normalize"]

DEFAULT_CACHE_SIZE = 20_000

# One alternation, scanned left to right, so a quote inside a comment or a "--" inside a string is never misread.
_TOKEN = re.compile(
    r"""
      (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*.*?\*/)
    | (?P<string>[eEbBxXnN]?'(?:[^']|'')*')
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)?\$)
    | (?P<identifier>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
    | (?P<placeholder>\?|%s|%\([^)]+\)s|(?<![:\w]):[A-Za-z_][A-Za-z0-9_]*|\$\d+)
    | (?P<number>(?<![\w.])[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)(?![\w]))
    | (?P<space>\s+)
    """,
    re.VERBOSE | re.DOTALL,
)
# After literals became "?": IN lists of placeholders, and VALUES with one or more rows of placeholders.
_ROW = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_IN_LIST = re.compile(rf"(\bIN\s*){_ROW}", re.IGNORECASE)
_VALUES_ROWS = re.compile(rf"(\bVALUES\s*){_ROW}(?:\s*,\s*{_ROW})*", re.IGNORECASE)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in ("line_comment", "block_comment"):
        return " "
    if kind == "space":
        return " "
    if kind == "identifier":
        return match.group()
    return "?"


def normalize(statement: str) -> str:
    """The canonical shape of `statement`: literals and placeholders as ``?``, lists collapsed, comments gone.

    Example:
        >>> normalize("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'  -- hot")
        'SELECT * FROM t WHERE id IN (...) AND name = ?'

    """
    text = _TOKEN.sub(_replace, statement)
    text = _IN_LIST.sub(r"\1(...)", text)
    text = _VALUES_ROWS.sub(r"\1(...)", text)
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A statement's identity: a short stable id and the normalized text it was derived from.

    Attributes:
        id: 16 hex digits of a BLAKE2b hash of `normalized`; the same in every process and run.
        normalized: the statement with its values taken out (see `normalize`).
        operation: the statement's first keyword in upper case (``SELECT``, ``INSERT``, ``WITH`` ...).

    """

    id: str
    normalized: str
    operation: str

    @classmethod
    def of(cls, statement: str) -> Fingerprint:
        """Fingerprint one statement (uncached; see `Fingerprinter` for the cached form)."""
        normalized = normalize(statement)
        digest = hashlib.blake2b(normalized.encode(), digest_size=8).hexdigest()
        operation = normalized.split(" ", 1)[0].upper() if normalized else ""
        return cls(id=digest, normalized=normalized, operation=operation)


class Fingerprinter:
    """Fingerprints statements, remembering the last `cache_size` distinct statement strings.

    Statements built with literal values inlined produce a new string per value; the cache is cleared when it is
    full rather than growing, so such a workload costs a normalization per call but never unbounded memory.
    """

    __slots__ = ("_cache", "cache_size")

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 1:
            msg = f"cache_size must be at least 1, not {cache_size!r}."
            raise ValueError(msg)
        self.cache_size = cache_size
        self._cache: dict[str, Fingerprint] = {}

    def __call__(self, statement: str) -> Fingerprint:
        """The fingerprint of `statement`."""
        found = self._cache.get(statement)
        if found is not None:
            return found
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        fingerprint = self._cache[statement] = Fingerprint.of(statement)
        return fingerprint
