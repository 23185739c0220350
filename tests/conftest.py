"""Session-wide real servers: the configured ones, or throwaway ones started here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.services import postgres_server, redis_server, service_url

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` if set, else the URL of a throwaway redis-server for this session."""
    with service_url("REDIS_URL", redis_server) as url:
        yield url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """``DATABASE_URL`` if set, else the URL of a throwaway PostgreSQL for this session."""
    with service_url("DATABASE_URL", postgres_server) as url:
        yield url
