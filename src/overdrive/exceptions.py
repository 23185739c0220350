"""The Overdrive exception tree.

Every error Overdrive raises derives from one root, so callers can catch the family they care about::

    OverdriveError
    ├── CacheError                         a cache operation failed
    │   ├── CacheTimeout (TimeoutError)    a cache tier did not answer in time
    │   ├── CacheUnavailable (ConnectionError)  a cache tier cannot be reached
    │   ├── SerializationError (ValueError)  a value cannot be encoded, or a stored entry cannot be decoded
    │   └── WriteBehindError               buffered writes could not be flushed; they are attached, never dropped
    ├── ConfigurationError (ValueError)    bad settings, URLs or options, found at start-up
    ├── DatabaseError                      the database layer (overdrive.db)
    │   ├── AdvisorError                   the index advisor cannot run (HypoPG missing, unsupported database)
    │   ├── ExplainError                   a statement cannot be explained on this database
    │   ├── InvalidCursor (ValueError)     a pagination cursor is tampered, foreign, outdated or malformed (a 400)
    │   ├── KeyNotFound (LookupError)      a batch loader found no row for a key that was required
    │   ├── LoaderError (RuntimeError)     a batch loader was misused: another event loop, a bad batch result
    │   ├── NPlusOneError                  an N+1 query pattern was found where the monitor is set to raise
    │   └── PaginationError (ValueError)   a statement cannot be keyset-paginated (no ORDER BY, no unique final key)
    ├── DemoError                          the reference shop app and its runner
    │   ├── SeedError                      seeding the demo database failed or found a foreign schema
    │   └── ServerStartError               the demo server process did not become ready
    └── LoadTestError                      a load run could not be carried out (unreachable target, failed worker)

Warnings: `NPlusOneWarning` (UserWarning), an N+1 query pattern found where the monitor is set to warn.
"""

__all__ = [
    "AdvisorError",
    "CacheError",
    "CacheTimeout",
    "CacheUnavailable",
    "ConfigurationError",
    "DatabaseError",
    "DemoError",
    "ExplainError",
    "InvalidCursor",
    "KeyNotFound",
    "LoadTestError",
    "LoaderError",
    "NPlusOneError",
    "NPlusOneWarning",
    "OverdriveError",
    "PaginationError",
    "SeedError",
    "SerializationError",
    "ServerStartError",
    "WriteBehindError",
]


class OverdriveError(Exception):
    """Root of every error Overdrive raises."""


class ConfigurationError(OverdriveError, ValueError):
    """A setting, URL or option is invalid; raised at start-up, never mid-request."""


class CacheError(OverdriveError):
    """A cache operation failed."""


class CacheTimeout(CacheError, TimeoutError):  # noqa: N818 -- reads like the builtin TimeoutError it extends
    """A cache tier did not answer within its time budget."""


class CacheUnavailable(CacheError, ConnectionError):  # noqa: N818 -- reads like the builtin it extends
    """A cache tier cannot be reached (connection refused, reset or closed)."""


class SerializationError(CacheError, ValueError):
    """A value cannot be encoded for a cache tier, or a stored entry cannot be decoded (corrupt, tampered, foreign)."""


class WriteBehindError(CacheError):
    """Buffered writes could not be flushed; the writes that were not stored are attached, never dropped.

    Attributes:
        pending: The `(key, value)` pairs the store did not accept.

    """

    def __init__(self, message: str, pending: list[tuple[object, object]]) -> None:
        super().__init__(message)
        self.pending = pending


class DemoError(OverdriveError):
    """The reference shop app or its runner failed."""


class SeedError(DemoError):
    """Seeding the demo database failed, or the database holds data Overdrive did not seed."""


class ServerStartError(DemoError):
    """The demo server process exited or did not answer its health check in time."""


class LoadTestError(OverdriveError):
    """A load run could not be carried out: the target is unreachable or a worker process failed."""


class DatabaseError(OverdriveError):
    """The database layer (`overdrive.db`) failed or was misused."""


class AdvisorError(DatabaseError):
    """The index advisor cannot run here: HypoPG is missing on PostgreSQL, or the database is not supported."""


class ExplainError(DatabaseError):
    """The database cannot explain a statement (a syntax error, an unknown table, an unsupported database)."""


class InvalidCursor(DatabaseError, ValueError):  # noqa: N818 -- a client error, read like ValueError; maps to 400
    """A pagination cursor is tampered, signed with another secret, bound to another ordering, outdated or garbage."""


class KeyNotFound(DatabaseError, LookupError):  # noqa: N818 -- reads like the builtin KeyError family it joins
    """A batch loader found no value for a key the caller required."""


class LoaderError(DatabaseError, RuntimeError):
    """A batch loader was used from another event loop, or its batch function returned a malformed result."""


class PaginationError(DatabaseError, ValueError):
    """A statement cannot be keyset-paginated: no ORDER BY, no unique final key, or an unsupported sort expression."""


class NPlusOneError(DatabaseError):
    """An N+1 query pattern was found while the query monitor is set to raise (typically in tests).

    Attributes:
        finding: The `overdrive.db.NPlusOne` found: what repeated, how often, where, and the fix.

    """

    def __init__(self, message: str, finding: object) -> None:
        super().__init__(message)
        self.finding = finding


class NPlusOneWarning(UserWarning):
    """An N+1 query pattern was found while the query monitor is set to warn."""
