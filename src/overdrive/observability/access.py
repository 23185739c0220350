"""The request's log context and its access-log line, driven by `ObservabilityMiddleware`.

While a request runs, `structlog.contextvars` carries its ``request_id``, ``method``, ``path`` and ``route``
(the template, resolved when a line is rendered, since routing happens inside the app), so every line logged
during the request (structlog or stdlib) carries them, as do fields the app binds itself. When the request
ends, one access line is written and the context is put back as it was before the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars

from overdrive.observability._render import Deferred

if TYPE_CHECKING:
    from collections.abc import Callable

    from overdrive.types import Scope

__all__ = ["ACCESS_EVENT", "AccessLog"]

ACCESS_EVENT = "request"
_SERVER_ERROR = 500


class AccessLog:
    """Binds the request context and writes one JSON line per request.

    Args:
        logger_name: the ``logger`` field of access lines.
        server_errors_as: the level of lines for 5xx responses and exceptions raised by the app.

    """

    def __init__(self, *, logger_name: str = "overdrive.access", server_errors_as: str = "error") -> None:
        self.logger_name = logger_name
        self.server_errors_as = server_errors_as
        self._logger: tuple[object, object, object, Any] = (None, None, None, None)

    def _bound_logger(self) -> Any:
        """The access logger, bound again only when structlog's configuration changes (binding costs µs)."""
        config = structlog.get_config()
        factory, processors, wrapper, logger = self._logger
        if (
            factory is not config["logger_factory"]
            or processors is not config["processors"]
            or wrapper is not config["wrapper_class"]
        ):
            logger = structlog.get_logger(self.logger_name).bind(logger=self.logger_name)
            self._logger = (config["logger_factory"], config["processors"], config["wrapper_class"], logger)
        return logger

    def start(self, scope: Scope, request_id: str, route: Callable[[Scope], str]) -> dict[str, Any]:
        """Bind the request's context; returns the context to put back at the end."""
        outer = get_contextvars()
        bind_contextvars(
            request_id=request_id, method=scope["method"], path=scope["path"], route=Deferred(route, scope)
        )
        return outer

    def finish(
        self,
        scope: Scope,
        outer: dict[str, Any],
        request_id: str,
        *,
        route: str,
        status: int,
        seconds: float,
        sent: int,
        error: BaseException | None,
    ) -> None:
        """Write the access line and restore the context from before the request."""
        client = scope.get("client")
        fields: dict[str, Any] = {  # the context holds most of these, unless the app cleared it
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "bytes_sent": sent,
            "client": client[0] if client else None,
        }
        logger = self._bound_logger()
        try:
            if error is not None:
                getattr(logger, self.server_errors_as)(ACCESS_EVENT, exc_info=error, **fields)
            elif status >= _SERVER_ERROR:
                getattr(logger, self.server_errors_as)(ACCESS_EVENT, **fields)
            else:
                logger.info(ACCESS_EVENT, **fields)
        finally:
            clear_contextvars()
            if outer:
                bind_contextvars(**outer)
