"""`@cache.cached`: cache a function's results, async or sync, keeping its signature for type checkers.

An L1 hit through a decorated async function runs: the compiled key function, one dict lookup, one clock read and
two comparisons. No Task, no closure and no copy is made; everything else (stale values, tags bumped since the last
check, cached errors, L2, loading) goes to `Cache.read_through`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

from overdrive.cache._keys import make_key_function, make_tags_function

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence

    from overdrive.cache.core import Cache
    from overdrive.cache.freshness import Freshness

__all__ = ["AsyncCachedFunction", "Decorator", "SyncCachedFunction", "cached"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class AsyncCachedFunction(Protocol[P, R_co]):
    """A cached async function: call it as before; `invalidate` and `key` take the same arguments."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]:
        """Call the function, or answer from the cache."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[bool]:
        """Drop the cached result for these arguments from every tier; True if one was cached."""
        ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The full cache key for these arguments."""
        ...


class SyncCachedFunction(Protocol[P, R_co]):
    """A cached synchronous function (memory tier only): `invalidate` and `key` take the same arguments."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call the function, or answer from the cache."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if one was cached."""
        ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The full cache key for these arguments."""
        ...


class Decorator:
    """What `cache.cached(...)` returns: apply it to an async or a sync function."""

    def __init__(
        self,
        cache: Cache,
        policy: Freshness,
        key: str | Callable[..., str] | None,
        tags: Sequence[str] | Callable[..., Iterable[str]],
        decode_as: Any,
    ) -> None:
        self._cache, self._policy, self._key, self._tags, self._decode_as = cache, policy, key, tags, decode_as

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a coroutine function is also a callable returning a value
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncCachedFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> SyncCachedFunction[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> AsyncCachedFunction[P, Any] | SyncCachedFunction[P, Any]:
        """Wrap `fn`: a coroutine function gets the async cache path, any other function the sync one."""
        cache = self._cache
        make_key = make_key_function(fn, cache.prefix, self._key)
        make_tags = make_tags_function(fn, self._tags)
        if inspect.iscoroutinefunction(fn):
            decode_as = self._decode_as if self._decode_as is not None else _return_type(fn, cache)
            return _wrap_async(
                cache, fn, make_key=make_key, make_tags=make_tags, policy=self._policy, decode_as=decode_as
            )
        return _wrap_sync(cache, fn, make_key=make_key, make_tags=make_tags, policy=self._policy)


def cached(
    cache: Cache,
    *,
    ttl: float | None = None,
    key: str | Callable[..., str] | None = None,
    tags: Sequence[str] | Callable[..., Iterable[str]] = (),
    stale_ttl: float | None = None,
    stale_if_error: float | None = None,
    none_ttl: float | None = None,
    error_types: tuple[type[BaseException], ...] | None = None,
    error_ttl: float | None = None,
    early_refresh: float | None = None,
    jitter: float | None = None,
    freshness: Freshness | None = None,
    decode_as: Any = None,
) -> Decorator:
    """Build the decorator behind `Cache.cached`.

    Args:
        cache: The cache the results go to.
        ttl: Seconds a result stays fresh (the cache's default policy when None).
        key: None for the default key (qualified name and argument reprs, which must be stable); a format string
            over the parameter names (`"user:{user_id}"`); or a callable with the function's parameters.
        tags: Tags each result carries: fixed strings, format strings over the parameter names, or a callable.
        stale_ttl: Stale-while-revalidate window, in seconds.
        stale_if_error: Stale-if-error window, in seconds.
        none_ttl: TTL of a None result (0: None is not cached).
        error_types: Exception types whose raising is cached for `error_ttl`.
        error_ttl: TTL of a cached exception.
        early_refresh: XFetch beta for probabilistic early refresh (0: off).
        jitter: Fraction of the TTL taken off at random.
        freshness: A whole policy to start from instead of the cache's default.
        decode_as: The type L2 entries decode to; by default the function's declared return type.

    Returns:
        A decorator for async or sync functions; the decorated function keeps its signature and gains
        `.invalidate(*args, **kwargs)` and `.key(*args, **kwargs)`.

    """
    policy = (freshness or cache.freshness).with_changes(
        ttl=ttl,
        stale_ttl=stale_ttl,
        stale_if_error=stale_if_error,
        none_ttl=none_ttl,
        error_types=error_types,
        error_ttl=error_ttl,
        early_refresh=early_refresh,
        jitter=jitter,
    )
    return Decorator(cache, policy, key, tags, decode_as)


def _return_type(fn: Callable[..., Any], cache: Cache) -> Any:
    """The declared return type, for decoding L2 entries (None, meaning plain data, when it cannot be resolved)."""
    if cache.l2 is None:
        return None
    try:
        hint = typing.get_type_hints(fn).get("return")
    except (NameError, TypeError):
        return None
    return None if hint is Any else hint


def _wrap_async(
    cache: Cache,
    fn: Callable[..., Coroutine[Any, Any, Any]],
    *,
    make_key: Callable[..., str],
    make_tags: Callable[..., tuple[str, ...]],
    policy: Freshness,
    decode_as: Any,
) -> AsyncCachedFunction[Any, Any]:
    read_through, metrics, clock, l1 = cache.read_through, cache.metrics, cache.clock, cache.l1
    if l1 is None:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = make_key(*args, **kwargs)
            loader = functools.partial(fn, *args, **kwargs)
            return await read_through(key, loader, policy, make_tags(*args, **kwargs), decode_as)

    else:
        peek = l1.peek

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = make_key(*args, **kwargs)
            entry = peek(key)
            if entry is not None and clock() < entry.refresh_at and entry.checked == l1.epoch:
                metrics.hits += 1
                return entry.value
            loader = functools.partial(fn, *args, **kwargs)
            return await read_through(key, loader, policy, make_tags(*args, **kwargs), decode_as)

    async def invalidate(*args: Any, **kwargs: Any) -> bool:
        return await cache.drop(make_key(*args, **kwargs))

    functools.update_wrapper(wrapper, fn)
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.key = make_key  # type: ignore[attr-defined]
    return cast("AsyncCachedFunction[Any, Any]", wrapper)


def _wrap_sync(
    cache: Cache,
    fn: Callable[..., Any],
    *,
    make_key: Callable[..., str],
    make_tags: Callable[..., tuple[str, ...]],
    policy: Freshness,
) -> SyncCachedFunction[Any, Any]:
    reader = cache.sync_reader()  # raises ConfigurationError without a memory tier
    read_through, metrics, clock, l1 = reader.read_through, cache.metrics, cache.clock, reader.l1
    peek = l1.peek

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(*args, **kwargs)
        entry = peek(key)
        if entry is not None and clock() < entry.refresh_at and entry.checked == l1.epoch:
            metrics.hits += 1
            return entry.value
        loader = functools.partial(fn, *args, **kwargs)
        return read_through(key, loader, policy, make_tags(*args, **kwargs))

    def invalidate(*args: Any, **kwargs: Any) -> bool:
        return l1.discard(make_key(*args, **kwargs))

    functools.update_wrapper(wrapper, fn)
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.key = make_key  # type: ignore[attr-defined]
    return cast("SyncCachedFunction[Any, Any]", wrapper)
