"""Overdrive: the performance layer for Python ASGI backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from overdrive.observability.instrument import instrument_app

__all__ = ["instrument_app"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import overdrive` (the CLI, `__version__`) stays cheap.
    if name == "instrument_app":
        from overdrive.observability.instrument import instrument_app  # noqa: PLC0415

        return instrument_app
    msg = f"module 'overdrive' has no attribute {name!r}"
    raise AttributeError(msg)
