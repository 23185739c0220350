"""The Overdrive exception tree.

Every error Overdrive raises derives from one root, so callers can catch the family they care about::

    OverdriveError
    ├── ConfigurationError (ValueError)    bad settings, URLs or options, found at start-up
    ├── DemoError                          the reference shop app and its runner
    │   ├── SeedError                      seeding the demo database failed or found a foreign schema
    │   └── ServerStartError               the demo server process did not become ready
    └── LoadTestError                      a load run could not be carried out (unreachable target, failed worker)
"""

__all__ = [
    "ConfigurationError",
    "DemoError",
    "LoadTestError",
    "OverdriveError",
    "SeedError",
    "ServerStartError",
]


class OverdriveError(Exception):
    """Root of every error Overdrive raises."""


class ConfigurationError(OverdriveError, ValueError):
    """A setting, URL or option is invalid; raised at start-up, never mid-request."""


class DemoError(OverdriveError):
    """The reference shop app or its runner failed."""


class SeedError(DemoError):
    """Seeding the demo database failed, or the database holds data Overdrive did not seed."""


class ServerStartError(DemoError):
    """The demo server process exited or did not answer its health check in time."""


class LoadTestError(OverdriveError):
    """A load run could not be carried out: the target is unreachable or a worker process failed."""
