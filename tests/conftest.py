"""Shared fixtures: real PostgreSQL and Redis servers, and the strict no-skip rule for CI.

`DATABASE_URL` / `REDIS_URL` point the suite at running servers; without them it starts throwaway servers of its
own (see tests/services.py). With `OVERDRIVE_REQUIRE_INTEGRATION=1` (CI), a skipped integration test fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests import services

_skipped_integration: list[str] = []


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio, the loop the servers use."""
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL: $DATABASE_URL, or a throwaway server for this session."""
    with services.service_url("DATABASE_URL", services.postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this session, dropped at the end."""
    name = f"overdrive_test_{uuid.uuid4().hex[:12]}"
    url = services.create_database(postgres_url, name)
    try:
        yield url
    finally:
        services.drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server URL: $REDIS_URL, or a throwaway server for this session."""
    with services.service_url("REDIS_URL", services.redis_server) as url:
        yield url


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember integration tests that were skipped."""
    if report.skipped and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when CI requires integration tests and one was skipped."""
    if _skipped_integration and os.environ.get("OVERDRIVE_REQUIRE_INTEGRATION") == "1":
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Integration tests were skipped, which CI forbids: {_skipped_integration}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
