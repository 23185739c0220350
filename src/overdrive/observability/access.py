"""The request's log context and its access-log line, driven by `ObservabilityMiddleware`.

While a request runs, one context variable of ours carries its ``request_id``, ``method``, ``path`` and ``route``
(the template, resolved when a line is logged, since routing happens inside the app); the `merge_request_context`
processor, part of `configure_logging`'s chain, puts them on every line logged during the request (structlog or
stdlib). Fields the app binds with ``structlog.contextvars`` are merged too, and end with the request. When the
request ends, one access line is written.

Setting one context variable costs a fraction of binding four structlog context variables (and of clearing and
re-binding them afterwards), and under `configure_logging` the access line is rendered by one `orjson` call and
queued directly, without structlog's per-call machinery; with any other structlog configuration it is logged
through structlog as usual.
"""

from __future__ import annotations

from contextvars import copy_context
from datetime import UTC, datetime
from logging import INFO, getLevelNamesMapping
from typing import TYPE_CHECKING, Any, Final

import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX

from overdrive.observability._render import render_line
from overdrive.observability.context import REQUEST, RequestContext
from overdrive.observability.logs import StructuredLogs, active_logs

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextvars import Context, Token

    from overdrive.types import Scope

__all__ = ["ACCESS_EVENT", "AccessLog", "RequestLogScope"]

ACCESS_EVENT: Final = "request"
_SERVER_ERROR: Final = 500
_PREFIX_LENGTH: Final = len(STRUCTLOG_KEY_PREFIX)


RequestLogScope = tuple["Context", "Token[RequestContext | None]"]
"""What `AccessLog.start` hands back for `finish`: the context before the request, and the token to reset."""


class AccessLog:
    """Sets the request's log context and writes one JSON line per request.

    Args:
        logger_name: the ``logger`` field of access lines.
        server_errors_as: the level of lines for 5xx responses and exceptions raised by the app.
        logs: the `configure_logging` output to write to while it is open (saves looking up the active one per
            request, and lets the middleware's compiled path render the line itself); by default, and once these
            are closed, lines go to whichever configuration is active.

    """

    def __init__(
        self,
        *,
        logger_name: str = "overdrive.access",
        server_errors_as: str = "error",
        logs: StructuredLogs | None = None,
    ) -> None:
        level = getLevelNamesMapping().get(server_errors_as.upper())
        if level is None:
            msg = f"Unknown log level {server_errors_as!r} for server errors; use a level name such as 'error'."
            raise ValueError(msg)
        self.logger_name = logger_name
        self.logs = logs
        self.server_errors_as = server_errors_as.lower()
        self._error_level = level
        self._logger: tuple[object, object, object, Any] = (None, None, None, None)

    @property
    def error_level(self) -> int:
        """The logging level of `server_errors_as`."""
        return self._error_level

    def start(self, scope: Scope, request_id: str, route_of: Callable[[Scope], str]) -> RequestLogScope:
        """Set the request's log context; returns what `finish` needs to end it."""
        # The snapshot costs constant time (contexts are immutable maps); `finish` compares against it.
        return copy_context(), REQUEST.set((request_id, scope, route_of))

    def finish(  # noqa: PLR0917 -- once per request: keyword arguments would cost measurable time
        self,
        scope: Scope,
        started: RequestLogScope,
        request_id: str,
        route: str,
        status: int,
        seconds: float,
        sent: int,
        error: BaseException | None,
    ) -> None:
        """Write the access line and put the log context back as it was before the request.

        Args:
            scope: the request's scope.
            started: what `start` returned.
            request_id: the request's id.
            route: its route template.
            status: the response status (500 when the app raised before starting one).
            seconds: how long the app took.
            sent: body bytes sent.
            error: the exception the app raised, if any.

        """
        outer, token = started
        try:
            client = scope.get("client")
            failed = error is not None or status >= _SERVER_ERROR
            fields: dict[str, Any] = {
                "event": ACCESS_EVENT,
                "level": self.server_errors_as if failed else "info",
                "logger": self.logger_name,
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": int(seconds * 1_000_000) / 1000,  # whole µs; `round` costs 4x as much
                "bytes_sent": sent,
                "client": client[0] if client else None,
            }
            now = copy_context()
            if outer or len(now) > 1:  # more than our own variable: fields bound by the app or around it
                for name, value in _close_context(outer, now).items():
                    fields.setdefault(name, value)
            logs = self.logs
            if logs is None or logs.closed:
                logs = active_logs()
            if logs is None:
                self._through_structlog(fields, error, failed=failed)
            elif logs.level <= (self._error_level if failed else INFO):
                fields["timestamp"] = datetime.now(UTC)
                if error is None and not logs.extra_processors:
                    logs.writer.put(render_line(fields))  # the chain `configure_logging` sets, minus structlog
                else:
                    if error is not None:
                        fields["exc_info"] = error
                    logs.write(fields)  # the full chain: exception formatting, the user's processors
        finally:
            REQUEST.reset(token)

    def _through_structlog(self, fields: dict[str, Any], error: BaseException | None, *, failed: bool) -> None:
        """Log through whatever structlog configuration is active (not ours): its processors, its output."""
        logger = self._bound_logger()
        event = fields.pop("event")
        del fields["level"], fields["logger"]  # structlog's chain and the bound logger add them
        log = getattr(logger, self.server_errors_as) if failed else logger.info
        if error is not None:
            log(event, exc_info=error, **fields)
        else:
            log(event, **fields)

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


def _close_context(outer: Context, now: Context) -> dict[str, Any]:
    """The structlog fields bound `now`; those bound or changed since `outer` are put back as they were then.

    Servers run each request in a task of its own, whose context ends with it, but a caller that runs several
    requests in one task (an in-process test client) would otherwise see one request's fields in the next.
    """
    bound: dict[str, Any] = {}
    for variable, value in now.items():
        name = variable.name
        if name.startswith(STRUCTLOG_KEY_PREFIX):
            if value is not Ellipsis:
                bound[name[_PREFIX_LENGTH:]] = value
            before = outer.get(variable, Ellipsis)
            if before is not value:
                variable.set(before)  # Ellipsis is how structlog marks a field as unbound
    return bound
