"""A captured query: the statement exactly as sent to the DBAPI, with its parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Parameters", "QuerySample"]

Parameters = tuple[Any, ...] | dict[str, Any] | None


@dataclass(frozen=True)
class QuerySample:
    """One statement as the driver received it.

    Attributes:
        statement: SQL in the driver's paramstyle (``?``, ``$1``, ``%s``, ``%(name)s`` or ``:name``).
        parameters: the bound values, positional or by name; None when the statement has none.

    """

    statement: str
    parameters: Parameters = None
