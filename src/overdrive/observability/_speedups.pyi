from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any

class Responder:
    """The send an app gets from ObservabilityMiddleware: notes the status and size, adds headers."""

    @property
    def request_id(self) -> str: ...
    def __call__(self, message: MutableMapping[str, Any], /) -> Awaitable[None]: ...
    def end(self, error: BaseException | None, /) -> None: ...

class Hot:
    """What ObservabilityMiddleware knows once: metrics tables, options, the access log."""

    def __init__(
        self,
        *,
        in_flight: dict[str, int],
        series: dict[Any, Any],
        status_classes: Mapping[int, str],
        methods: frozenset[str],
        new_series: Callable[[tuple[str, str, str]], object],
        route_of: Callable[[MutableMapping[str, Any]], str],
        buckets: Sequence[float],
        server_timing: bool,
        trust_request_id: bool,
        seed: int,
        request_var: ContextVar[Any],
        access: object | None,
        info_level: int,
        error_level: int,
        exemplars: Callable[[], str | None] | None,
        exemplar: Callable[..., None],
    ) -> None: ...
    @property
    def fast_lines(self) -> int: ...
    def begin(
        self, scope: MutableMapping[str, Any], send: Callable[[MutableMapping[str, Any]], Awaitable[None]], /
    ) -> Responder: ...

def access_line(
    level: object,
    logger: object,
    request_id: object,
    method: object,
    path: object,
    route: object,
    status: int,
    whole_us: int,
    sent: int,
    client: object,
    unix_us: int,
    /,
) -> bytes | None: ...
