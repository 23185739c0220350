"""Key and tag functions for cached functions, built once at decoration time.

The default key is the function's module and qualified name followed by the repr of its bound arguments, with
defaults filled in, so `f(1)`, `f(1, 2)` and `f(a=1)` share a key when `b` defaults to 2. Binding with
`inspect.Signature.bind` costs microseconds per call; instead we compile, once, a function with the same
parameters whose body builds the key, so Python's own argument binding (in C) does the work on every call.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = ["make_key_function", "make_tags_function"]

_P = inspect.Parameter


def _signature_source(fn: Callable[..., Any]) -> tuple[str, list[str], dict[str, Any]]:
    """The parameter list of `fn` as source, the expressions of its bound values, and the defaults' namespace."""
    params: list[str] = []
    values: list[str] = []
    namespace: dict[str, Any] = {"_sorted": sorted}
    seen_star = False
    parameters = list(inspect.signature(fn).parameters.values())
    for index, param in enumerate(parameters):
        name = param.name
        if param.kind is _P.VAR_POSITIONAL:
            params.append(f"*{name}")
            seen_star = True
        elif param.kind is _P.VAR_KEYWORD:
            params.append(f"**{name}")
        else:
            if param.kind is _P.KEYWORD_ONLY and not seen_star:
                params.append("*")
                seen_star = True
            default = ""
            if param.default is not _P.empty:
                namespace[f"_d{index}"] = param.default
                default = f"=_d{index}"
            params.append(name + default)
            following = parameters[index + 1] if index + 1 < len(parameters) else None
            if param.kind is _P.POSITIONAL_ONLY and (following is None or following.kind is not _P.POSITIONAL_ONLY):
                params.append("/")
        values.append(f"tuple(_sorted({name}.items()))" if param.kind is _P.VAR_KEYWORD else name)
    return ", ".join(params), values, namespace


def _compile(name: str, params: str, body: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    source = f"def {name}({params}):\n    return {body}\n"
    exec(source, namespace)  # noqa: S102 -- the source is built from a signature's identifiers, never from data
    function: Callable[..., Any] = namespace[name]
    return function


def _names(fn: Callable[..., Any]) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values()]


def make_key_function(fn: Callable[..., Any], prefix: str, key: str | Callable[..., str] | None) -> Callable[..., str]:
    """A function taking `fn`'s arguments and returning the full cache key.

    Args:
        fn: The cached function.
        prefix: The cache's namespace and version prefix.
        key: None for the default (qualified name and argument reprs); a format string over the parameter names,
            such as `"user:{user_id}"`; or a callable with `fn`'s parameters returning a key.

    """
    if callable(key):
        custom = key

        def custom_key(*args: Any, **kwargs: Any) -> str:
            return prefix + custom(*args, **kwargs)

        return custom_key
    params, values, namespace = _signature_source(fn)
    if key is None:
        namespace["_prefix"] = f"{prefix}{fn.__module__}.{fn.__qualname__}:"
        args = values[0] if len(values) == 1 else f"({', '.join(values)},)" if values else "()"
        body = f"_prefix + repr({args})"
    else:
        namespace["_prefix"], namespace["_format"] = prefix, key.format
        body = f"_prefix + _format({', '.join(f'{n}={n}' for n in _names(fn))})"
    return _compile("cache_key", params, body, namespace)


def make_tags_function(
    fn: Callable[..., Any], tags: Sequence[str] | Callable[..., Iterable[str]]
) -> Callable[..., tuple[str, ...]]:
    """A function taking `fn`'s arguments and returning the tags of its result.

    Args:
        fn: The cached function.
        tags: Tag strings, each either fixed or a format string over the parameter names (`"user:{user_id}"`);
            or a callable with `fn`'s parameters returning the tags.

    """
    if callable(tags):
        custom = tags

        def custom_tags(*args: Any, **kwargs: Any) -> tuple[str, ...]:
            return tuple(custom(*args, **kwargs))

        return custom_tags
    fixed = tuple(tags)
    if not any("{" in tag for tag in fixed):

        def fixed_tags(*_: Any, **__: Any) -> tuple[str, ...]:
            return fixed

        return fixed_tags
    params, _, namespace = _signature_source(fn)
    keywords = ", ".join(f"{n}={n}" for n in _names(fn))
    parts = []
    for index, tag in enumerate(fixed):
        namespace[f"_t{index}"] = tag
        parts.append(f"_t{index}.format({keywords})" if "{" in tag else f"_t{index}")
    return _compile("cache_tags", params, f"({', '.join(parts)},)", namespace)
