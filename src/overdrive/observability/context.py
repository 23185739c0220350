"""The current request's log fields, carried by one context variable while `ObservabilityMiddleware` runs it.

`merge_request_context` is the structlog processor that puts them on a line; `configure_logging` runs it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from overdrive.types import Scope

__all__ = ["REQUEST", "RequestContext", "merge_request_context", "request_fields"]


RequestContext = tuple[str, "Scope", "Callable[[Scope], str]"]
"""The current request's request id, scope and route lookup (routing runs inside the app, so the route template
is looked up when a line is logged)."""

REQUEST: ContextVar[RequestContext | None] = ContextVar("overdrive_request", default=None)


def merge_request_context(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """A structlog processor: add the current request's ``request_id``, ``method``, ``path`` and ``route``.

    `configure_logging` runs it; add it to your own chain if you configure structlog yourself. Fields the call
    or the bound context already holds are left alone.
    """
    request = REQUEST.get()
    if request is not None:
        request_id, scope, route_of = request
        setdefault = event_dict.setdefault
        setdefault("request_id", request_id)
        setdefault("method", scope["method"])
        setdefault("path", scope["path"])
        if "route" not in event_dict:
            event_dict["route"] = route_of(scope)
    return event_dict


def request_fields() -> dict[str, str]:
    """The current request's log fields (empty outside a request run by `ObservabilityMiddleware` with a log)."""
    fields: dict[str, str] = {}
    merge_request_context(None, "", fields)
    return fields
