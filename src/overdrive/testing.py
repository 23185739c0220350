"""Public test helpers: fakes users can drive their own tests with.

`FakeClock` stands in for `time.time` / `time.monotonic` wherever Overdrive takes a `clock=` argument, so tests
move time forward explicitly instead of sleeping.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


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
