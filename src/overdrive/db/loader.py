"""A DataLoader-style batch loader: many ``load(key)`` calls in one event-loop tick become one batch call.

Resolving a list of 50 orders' customers one ``session.get()`` at a time costs 50 round trips; with a loader every
``await loader.load(order.customer_id)`` started in the same tick (for example under ``asyncio.gather``) is answered
by one ``SELECT ... WHERE id IN (...)``.

    customers = model_loader(session, Customer, Customer.id)
    names = await asyncio.gather(*(customers.load(order.customer_id) for order in orders))

A loader caches what it loaded for its lifetime, so make one per request (or per task) and drop it afterwards; it is
bound to the event loop that first uses it and refuses any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import sqlalchemy as sa

from overdrive.exceptions import KeyNotFound, LoaderError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import InstrumentedAttribute

__all__ = ["BatchLoader", "model_loader"]

K = TypeVar("K", bound="Hashable")
V = TypeVar("V")
M = TypeVar("M")
DEFAULT_MAX_BATCH = 1000


class BatchLoader(Generic[K, V]):
    """Collects the keys requested in one event-loop tick and fetches them with one call.

    Args:
        batch: Given the distinct keys of one batch, returns their values: a mapping from key to value (keys it
            leaves out are missing), or a sequence of values in the order of the keys (None for a missing one).
        max_batch_size: The most keys one call receives; larger batches are split, so IN lists stay within the
            database's parameter limit.

    """

    __slots__ = ("_batch", "_cache", "_loop", "_pending", "_tasks", "max_batch_size")

    def __init__(
        self,
        batch: Callable[[list[K]], Awaitable[Mapping[K, V] | Sequence[V | None]]],
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._batch = batch
        self.max_batch_size = max_batch_size
        self._cache: dict[K, asyncio.Future[V | None]] = {}
        # Keys with their futures: clear() may drop a key from the cache before its batch runs.
        self._pending: list[tuple[K, asyncio.Future[V | None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, key: K) -> V | None:
        """Return the value for ``key``, or None when the batch function found none.

        Raises:
            LoaderError: The loader is used from another event loop, or the batch result is malformed.

        """
        future = self._cache.get(key)
        if future is None or self._loop is not asyncio.get_running_loop():
            future = self._schedule(key)
        # Shielded: one cancelled caller must not cancel the shared future the others wait on.
        return await asyncio.shield(future)

    async def load_many(self, keys: Iterable[K]) -> list[V | None]:
        """Return the values for ``keys`` in order, None for missing ones, fetched in one batch."""
        return list(await asyncio.gather(*(self.load(key) for key in keys)))

    async def require(self, key: K) -> V:
        """Return the value for ``key``.

        Raises:
            KeyNotFound: The batch function found no value for ``key``.

        """
        value = await self.load(key)
        if value is None:
            msg = f"No value was found for key {key!r}."
            raise KeyNotFound(msg)
        return value

    def prime(self, key: K, value: V) -> None:
        """Put ``value`` in the cache for ``key`` unless it is already there (e.g. rows loaded another way)."""
        if key not in self._cache:
            future = self._bound_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    def clear(self, key: K | None = None) -> None:
        """Forget ``key`` (every key when None), so the next load fetches it again, e.g. after a write."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def _bound_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            msg = (
                "This BatchLoader belongs to another event loop; create one loader per request and do not share it "
                "across requests, threads or event loops."
            )
            raise LoaderError(msg)
        return loop

    def _schedule(self, key: K) -> asyncio.Future[V | None]:
        loop = self._bound_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._cache[key] = future
        if not self._pending:
            # Runs after every callback already queued, so the loads started in this tick join the batch.
            loop.call_soon(self._dispatch)
        self._pending.append((key, future))
        return future

    def _dispatch(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_batch_size):
            task = asyncio.get_running_loop().create_task(self._fetch(pending[start : start + self.max_batch_size]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, pending: list[tuple[K, asyncio.Future[V | None]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in pending))  # distinct, in first-requested order
        try:
            values = dict(zip(keys, _align(keys, await self._batch(keys)), strict=True))
        except Exception as exc:  # noqa: BLE001 -- handed to every waiting caller, who re-raises it
            for key, future in pending:
                if self._cache.get(key) is future:
                    del self._cache[key]  # a failure is not cached; the next load tries again
                future.set_exception(exc)
            return
        # Callers await these through shield(), so no future here is ever cancelled or resolved elsewhere.
        for key, future in pending:
            future.set_result(values[key])


def _align(keys: list[K], result: Mapping[K, V] | Sequence[V | None]) -> list[V | None]:
    """The batch result as one value per key, in key order."""
    if isinstance(result, Mapping):
        return [result.get(key) for key in keys]
    values = list(result)
    if len(values) != len(keys):
        msg = (
            f"The batch function returned {len(values)} values for {len(keys)} keys; a sequence result must hold "
            "one value per key, in key order, with None for missing keys."
        )
        raise LoaderError(msg)
    return values


def model_loader(
    session: AsyncSession,
    model: type[M],
    column: InstrumentedAttribute[Any],
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH,
) -> BatchLoader[Any, M]:
    """A loader of ``model`` rows by ``column``, which must be unique: ``SELECT ... WHERE column IN (:keys)``.

    Args:
        session: The request's async session; the loader must not outlive it.
        model: The mapped class to load.
        column: A unique column attribute of ``model``, such as ``Model.id``.
        max_batch_size: The most keys in one IN list.

    """
    name = column.key

    async def batch(keys: list[Any]) -> dict[Any, M]:
        rows = await session.scalars(sa.select(model).where(column.in_(keys)))
        return {getattr(row, name): row for row in rows}

    return BatchLoader(batch, max_batch_size=max_batch_size)
