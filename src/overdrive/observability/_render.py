"""Log records to JSON lines with orjson, with a fallback for any value orjson refuses.

A value orjson cannot serialize (an arbitrary object, a self-referencing dict, an integer past 64 bits, a string
holding lone surrogates, an object whose ``__repr__`` raises) is rendered as a safe ``repr`` instead: a log call
never raises because of what it was given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Deferred", "render_json", "render_line", "safe_repr"]

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
_STR_KEYS_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z


class Deferred:
    """A context value computed only when a line is rendered (the route template, known after routing)."""

    __slots__ = ("argument", "function")

    def __init__(self, function: Callable[[Any], object], argument: object) -> None:
        self.function = function
        self.argument = argument

    def __call__(self) -> object:
        return self.function(self.argument)


def render_json(_logger: object, _method: str, event_dict: Mapping[str, Any]) -> bytes:
    """The last processor: one JSON object and a newline, never an exception."""
    try:
        return orjson.dumps(event_dict, default=_default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return orjson.dumps(_sanitized(event_dict), default=_default, option=_OPTIONS)


def render_line(fields: Mapping[str, Any]) -> bytes:
    """`render_json` for a mapping whose keys are all strings (an access line): orjson's faster option set."""
    try:
        return orjson.dumps(fields, option=_STR_KEYS_OPTIONS)
    except TypeError:
        return render_json(None, "", fields)


def safe_repr(value: object) -> str:
    """``repr(value)`` as valid UTF-8 text, or a placeholder when ``repr`` itself fails."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 -- hostile objects may raise anything from __repr__
        text = f"<unrepresentable {type(value).__qualname__}>"
    return _valid_text(text)


def _default(value: object) -> object:
    if type(value) is Deferred:
        return value()
    return safe_repr(value)


def _sanitized(event_dict: Mapping[Any, Any]) -> dict[str, object]:
    clean: dict[str, object] = {}
    for key, value in event_dict.items():
        name = _valid_text(key) if isinstance(key, str) else safe_repr(key)
        try:
            orjson.dumps(value, default=_default, option=_OPTIONS)
        except TypeError:
            clean[name] = _valid_text(value) if isinstance(value, str) else safe_repr(value)
        else:
            clean[name] = value
    return clean


def _valid_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
