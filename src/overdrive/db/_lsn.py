"""PostgreSQL WAL positions (LSNs) as integers.

PostgreSQL prints an LSN as two hexadecimal halves, ``16/B374D848``; as one 64-bit integer they compare and subtract
directly, which is all routing needs.
"""

from __future__ import annotations

__all__ = ["UNKNOWN_LSN", "format_lsn", "parse_lsn"]

# Past any real position: a write whose position could not be read keeps reads on the primary until it expires.
UNKNOWN_LSN = 2**64 - 1


def parse_lsn(text: str) -> int:
    """Return the LSN ``text`` (``"16/B374D848"``) as an integer.

    Raises:
        ValueError: ``text`` is not an LSN.

    """
    high, sep, low = text.partition("/")
    try:
        if sep:
            return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        pass
    msg = f"{text!r} is not a PostgreSQL WAL position such as '16/B374D848'."
    raise ValueError(msg)


def format_lsn(lsn: int) -> str:
    """Return ``lsn`` in PostgreSQL's notation."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
