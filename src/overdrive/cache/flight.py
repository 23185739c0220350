"""Single-flight: at most one load per key at a time; every other caller for that key awaits the same load.

Cancellation: a load belongs to the flight, not to the caller that started it. The loader runs in its own Task and
every caller, the first one included, awaits it through `asyncio.shield`. So a cancelled caller (a client that hung
up, a timeout) stops waiting, but the load goes on: the other waiters get its result, and it is stored so the next
caller hits. Only `SingleFlight.cancel_all` (on `Cache.aclose`) cancels loads.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable

__all__ = ["Flight", "SingleFlight", "SyncSingleFlight"]


class Flight:
    """One running load.

    Attributes:
        task: The Task running the load.
        tags: The tags the loaded value will carry.
        superseded: Set when the key was written, deleted or invalidated while loading: the result still goes to
            the callers waiting for it, but it is not stored (it may predate the write).

    """

    __slots__ = ("superseded", "tags", "task")

    def __init__(self, tags: tuple[str, ...]) -> None:
        self.tags = tags
        self.superseded = False
        self.task: asyncio.Task[Any]


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every waiter may have been cancelled; reading the exception keeps asyncio from logging it as never retrieved.
    if not task.cancelled():
        task.exception()


class SingleFlight:
    """The running loads of one cache, by key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def get(self, key: str) -> Flight | None:
        """The load running for `key`, if any."""
        return self._flights.get(key)

    def start(self, key: str, tags: tuple[str, ...], run: Callable[[Flight], Coroutine[Any, Any, Any]]) -> Flight:
        """Start `run(flight)` in a Task as the one load for `key`."""
        flight = Flight(tags)
        flight.task = asyncio.get_running_loop().create_task(run(flight))
        self._flights[key] = flight
        flight.task.add_done_callback(_retrieve)
        flight.task.add_done_callback(lambda _: self._finish(key, flight))
        return flight

    def _finish(self, key: str, flight: Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def supersede(self, key: str) -> None:
        """Detach the load for `key`: its result is not stored, and the next caller starts a fresh load."""
        flight = self._flights.pop(key, None)
        if flight is not None:
            flight.superseded = True

    def supersede_tagged(self, tags: Iterable[str]) -> None:
        """Detach every running load whose value carries one of `tags` (O(running loads), not O(keys))."""
        wanted = set(tags)
        for key in [key for key, flight in self._flights.items() if wanted.intersection(flight.tags)]:
            self.supersede(key)

    async def drain(self) -> None:
        """Wait until no load is running (loads started meanwhile are waited for too)."""
        while self._flights:
            await asyncio.gather(*(flight.task for flight in list(self._flights.values())), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every running load and wait for them to finish."""
        tasks = [flight.task for flight in self._flights.values()]
        self._flights.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class SyncSingleFlight:
    """The running loads of synchronous cached functions, shared across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Any]] = {}

    def running(self, key: str) -> bool:
        """Whether a thread is loading `key` now."""
        return key in self._futures

    def join_or_lead(self, key: str) -> tuple[Future[Any], bool]:
        """The future for `key`'s load and whether the caller leads it (must run the load and settle the future)."""
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future, False
            future = self._futures[key] = Future()
            return future, True

    def finish(self, key: str) -> None:
        """Forget the load for `key` (its future is settled)."""
        with self._lock:
            self._futures.pop(key, None)
