"""Order confirmations: the deliberately slow step the async-processing step takes off the request path."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from overdrive.demo.schemas import OrderOut

__all__ = ["ConfirmationSender", "SlowMailer"]


class ConfirmationSender(Protocol):
    """Sends an order confirmation to the buyer."""

    async def send(self, order: OrderOut) -> None:
        """Deliver the confirmation for `order`."""


class SlowMailer:
    """Stands in for an SMTP or e-mail API call that takes `delay` seconds, and records which orders it confirmed."""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.sent: list[int] = []

    async def send(self, order: OrderOut) -> None:
        """Wait as long as a real mail call would, then record the order as confirmed."""
        await asyncio.sleep(self.delay)
        self.sent.append(order.id)
