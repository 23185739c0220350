"""Failing open: while the L2 tier is down or slow, the cache runs on L1 and the loader, and says so once.

A failed L2 call (`CacheTimeout`, `CacheUnavailable`) starts an outage: it is logged once, counted, and for the
next `backoff` seconds L2 is skipped altogether, so requests do not each wait out the timeout. The first call
after that probes L2 again; success ends the outage (logged once more), failure extends it.

A failed call starts an outage only if no L2 call was answered while it ran. A call that fails while others succeed
met congestion (a saturated event loop, a slow command), not a dead tier: it fails open alone. Skipping L2 for
everyone then would turn a busy moment into a burst of loader calls, the stampede the cache exists to prevent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from overdrive.exceptions import CacheTimeout, CacheUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from overdrive.cache.metrics import CacheMetrics

__all__ = ["L2_FAULTS", "Outage"]

log = logging.getLogger("overdrive.cache")
L2_FAULTS = (CacheTimeout, CacheUnavailable)


class Outage:
    """The fail-open state of one cache's L2 tier.

    Args:
        metrics: Where `l2_errors` and `l2_outages` are counted.
        backoff: Seconds L2 is skipped after a failure.
        clock: A monotonic time source.

    """

    def __init__(
        self, metrics: CacheMetrics, *, backoff: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.backoff = backoff
        self.clock = clock
        self.down = False
        self._retry_at = 0.0
        self._answered_at = -1.0

    def skipping(self) -> bool:
        """Whether L2 is being skipped right now (an outage within its backoff)."""
        return self.down and self.clock() < self._retry_at

    async def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, default: Any = None) -> Any:
        """`await fn(*args)`, or `default` if L2 failed, or is being skipped (then `fn` is not called)."""
        started = self.clock()
        if self.down and started < self._retry_at:
            return default
        try:
            result = await fn(*args)
        except L2_FAULTS as exc:
            self.failed(exc, started=started)
            return default
        self._answered_at = self.clock()
        if self.down:
            self.down = False
            log.warning("The L2 cache tier answers again; the outage is over.")
        return result

    def answered(self) -> None:
        """Note an L2 call answered outside `call` (it proves the tier alive to calls failing meanwhile)."""
        self._answered_at = self.clock()

    def failed(self, exc: BaseException, *, started: float | None = None) -> None:
        """Count a failed L2 call that began at `started` (unknown: None); the first of an outage is logged.

        If another call was answered since `started`, the tier is alive: nothing more happens.
        """
        self.metrics.l2_errors += 1
        if started is not None and self._answered_at > started:
            return
        self._retry_at = self.clock() + self.backoff
        if not self.down:
            self.down = True
            self.metrics.l2_outages += 1
            log.warning(
                "The L2 cache tier failed (%s); serving from L1 and loaders, retrying in %.1f s.", exc, self.backoff
            )
