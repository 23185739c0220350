"""Send a captured statement through a SQLAlchemy connection, with its parameters, in the driver's paramstyle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from overdrive.exceptions import ExplainError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, CursorResult

    from overdrive.db.sample import QuerySample

__all__ = ["quote", "send"]


def send(connection: Connection, sample: QuerySample, prefix: str = "") -> CursorResult[Any]:
    """Execute ``prefix + sample.statement`` with the sample's parameters.

    Raises:
        ExplainError: the database rejected the statement.

    """
    statement = prefix + sample.statement
    try:
        if not sample.parameters:
            # Without this, format-style drivers (psycopg) still parse `%` in a statement that has no parameters.
            return connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
        return connection.exec_driver_sql(statement, sample.parameters)
    except DBAPIError as exc:
        head = " ".join(sample.statement.split())[:200]
        msg = f"The database cannot run this statement: {head!r} ({exc.orig})."
        raise ExplainError(msg) from exc


def quote(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
