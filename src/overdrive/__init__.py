"""Overdrive: the performance layer for Python ASGI backends."""

__version__ = "0.1.0"
