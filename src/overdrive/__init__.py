"""Overdrive: the performance layer for Python ASGI backends."""

from overdrive.observability.instrument import instrument_app

__all__ = ["instrument_app"]

__version__ = "0.1.0"
