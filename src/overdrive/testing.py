"""Public test helpers: fakes and assertions users can drive their own tests with.

`FakeClock` stands in for `time.time` / `time.monotonic` wherever Overdrive takes a `clock=` argument, so tests
move time forward explicitly instead of sleeping.

`assert_queries` fails a test whose block sends more queries than allowed or contains an N+1 pattern (needs
SQLAlchemy, imported only when used).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from overdrive.db.monitor import QueryMonitor, QueryScope

__all__ = ["FakeClock", "assert_queries"]


class FakeClock:
    """A clock that only moves when told to.

    Call it like `time.time()`; move it with `advance()` or `set()`.

    Args:
        start: The time the clock reads at first, in seconds.

    Example:
        >>> clock = FakeClock(100.0)
        >>> clock.advance(2.5)
        >>> clock()
        102.5

    """

    __slots__ = ("now",)

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The current time, in seconds."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (never backwards)."""
        if seconds < 0:
            msg = f"A clock cannot go backwards; got advance({seconds})."
            raise ValueError(msg)
        self.now += seconds

    def set(self, now: float) -> None:
        """Set the clock to `now` seconds."""
        self.now = now


@contextmanager
def assert_queries(
    target: Engine | AsyncEngine | QueryMonitor,
    *,
    max: int | None = None,  # noqa: A002 -- reads as the limit it is: assert_queries(engine, max=2)
    exactly: int | None = None,
    no_n_plus_one: bool = True,
) -> Iterator[QueryScope]:
    """Fail unless the block sends at most `max` (or `exactly`) queries and, by default, no N+1 pattern.

    Args:
        target: the engine the code under test uses (sync or async), or a `QueryMonitor` already instrumenting it.
        max: the most statements the block may send.
        exactly: the number of statements the block must send.
        no_n_plus_one: fail on any N+1 finding (lazy loads per parent object, or a SELECT run in a loop).

    Yields:
        The `QueryScope` of the block, for further assertions.

    Raises:
        AssertionError: with every statement sent (normalized, with the line that sent it) and every finding.

    Example:
        with assert_queries(engine, max=2):
            orders = session.scalars(select(Order).options(selectinload(Order.items))).all()

    """
    from overdrive.db.monitor import QueryMonitor  # noqa: PLC0415 -- SQLAlchemy only when this helper is used

    if isinstance(target, QueryMonitor):
        monitor, owned = target, False
    else:
        monitor, owned = QueryMonitor(n_plus_one="record", call_sites=False), True
        monitor.instrument(target)
    try:
        with monitor.scope("assert_queries", record_statements=True) as scope:
            yield scope
    finally:
        if owned:
            monitor.uninstrument()
    problems: list[str] = []
    if max is not None and scope.queries > max:
        problems.append(f"{scope.queries} queries were sent, at most {max} allowed.")
    if exactly is not None and scope.queries != exactly:
        problems.append(f"{scope.queries} queries were sent, exactly {exactly} expected.")
    if no_n_plus_one and scope.findings:
        problems.extend(finding.describe() for finding in scope.findings)
    if problems:
        sent = "\n".join(f"  {i}. {sql}  [{site or '?'}]" for i, (sql, site) in enumerate(scope.statements, 1))
        raise AssertionError("\n".join([*problems, "Statements sent:", sent or "  (none)"]))
