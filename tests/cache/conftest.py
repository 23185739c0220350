"""Fixtures for the cache tests: a fake clock, a seeded rng and caches built on them."""

from __future__ import annotations

import random

import pytest

from overdrive.cache import Cache, Freshness, MemoryTier
from overdrive.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    """A memory-only cache with no jitter, so deadlines are exact."""
    return Cache(MemoryTier(100, clock=clock), clock=clock, freshness=Freshness(ttl=60, jitter=0), rng=random.Random(1))


@pytest.fixture
def two_level(clock: FakeClock) -> Cache:
    """An L1 + L2 cache; the L2 is a second memory tier, which stores codec bytes like Redis would."""
    return Cache(
        MemoryTier(100, clock=clock),
        MemoryTier(1000, clock=clock),
        clock=clock,
        freshness=Freshness(ttl=60, jitter=0),
        rng=random.Random(1),
    )


class Loader:
    """An async loader that counts its calls and returns (or raises) what it is told."""

    def __init__(self, value: object = "v") -> None:
        self.value = value
        self.error: Exception | None = None
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.value
