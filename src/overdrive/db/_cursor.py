"""Opaque, versioned, HMAC-signed keyset cursors.

A cursor is ``base64url(version || payload || mac)``: one version byte, a MessagePack payload holding the fingerprint
of the ORDER BY it was issued for and the sort-key values of one row, and the first 16 bytes of an HMAC-SHA256 over
both. The MAC is checked before the payload is parsed, so a client can neither forge positions nor feed the decoder
crafted bytes. Every value carries a type tag, so datetimes, decimals and UUIDs come back as the same type and value.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from overdrive.db._signing import MAC_SIZE, Signer
from overdrive.exceptions import InvalidCursor, PaginationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["CursorCodec"]

VERSION = 1
_NATIVE = (str, int, float, bytes)  # MessagePack keeps these types (and bool, an int) exactly

# The tag of each non-native type, how to write it, and how to read it back.
_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("T", dt.datetime.isoformat),
    dt.date: ("d", dt.date.isoformat),
    dt.time: ("t", dt.time.isoformat),
    dt.timedelta: ("D", lambda v: [v.days, v.seconds, v.microseconds]),
    Decimal: ("N", str),
    uuid.UUID: ("U", lambda v: v.bytes),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "T": dt.datetime.fromisoformat,
    "d": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "D": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "N": Decimal,
    "U": lambda v: uuid.UUID(bytes=v),
}


def _tag(value: object) -> list[Any]:
    if value is None or isinstance(value, _NATIVE):
        return ["", value]
    # Subclasses count too: asyncpg returns its own UUID subclass.
    entry = next((_ENCODERS[cls] for cls in type(value).__mro__ if cls in _ENCODERS), None)
    if entry is None:
        msg = (
            f"Cannot put a sort-key value of type {type(value).__name__} into a cursor; "
            "sort by columns of str, int, float, bytes, bool, datetime, date, time, timedelta, Decimal or UUID type."
        )
        raise PaginationError(msg)
    tag, encode = entry
    return [tag, encode(value)]


def _untag(pair: Any) -> object:
    tag, raw = pair
    if tag == "":
        return raw
    return _DECODERS[tag](raw)


class CursorCodec:
    """Signs sort-key values into cursor strings and reads them back.

    Args:
        secret: The HMAC key, at least 16 bytes; every server that reads a cursor must share it.

    Raises:
        ConfigurationError: The secret is shorter than 16 bytes.

    """

    __slots__ = ("_signer",)

    def __init__(self, secret: bytes | str) -> None:
        self._signer = Signer(secret, purpose="cursor")

    def encode(self, fingerprint: bytes, values: Sequence[object]) -> str:
        """Return the cursor for the row with sort-key ``values`` under the ordering ``fingerprint``."""
        signed = bytes([VERSION]) + msgspec.msgpack.encode([fingerprint, [_tag(v) for v in values]])
        return base64.urlsafe_b64encode(signed + self._signer.mac(signed)).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str, fingerprint: bytes, width: int) -> tuple[object, ...]:
        """Return the sort-key values in ``cursor``, checking its signature, version and ordering.

        Args:
            cursor: A string from `Page.next_cursor` or `Page.previous_cursor`.
            fingerprint: The fingerprint of the ordering being paginated.
            width: The number of sort keys in that ordering.

        Raises:
            InvalidCursor: The cursor is malformed, of another version, tampered with, signed with another secret or
                issued for another ordering.

        """
        raw = _unbase64(cursor)
        if len(raw) <= 1 + MAC_SIZE:
            msg = (
                "The pagination cursor is malformed: it is too short to hold a position. Request the first page again."
            )
            raise InvalidCursor(msg)
        if raw[0] != VERSION:
            msg = (
                f"The pagination cursor has version {raw[0]}, but this server reads version {VERSION} only. "
                "Request the first page again."
            )
            raise InvalidCursor(msg)
        signed, mac = raw[:-MAC_SIZE], raw[-MAC_SIZE:]
        if not self._signer.verify(signed, mac):
            msg = "The pagination cursor's signature does not match: it was altered or issued by another server."
            raise InvalidCursor(msg)
        try:
            issued_for, pairs = msgspec.msgpack.decode(signed[1:])
            values = tuple(_untag(pair) for pair in pairs)
        except (msgspec.DecodeError, TypeError, ValueError, KeyError) as exc:
            msg = "The pagination cursor is signed but its contents cannot be read; request the first page again."
            raise InvalidCursor(msg) from exc
        if issued_for != fingerprint or len(values) != width:
            msg = (
                "The pagination cursor was issued for a different ordering of results and cannot be used with this one."
            )
            raise InvalidCursor(msg)
        return values


def _unbase64(cursor: object) -> bytes:
    if not isinstance(cursor, str) or not cursor.isascii():
        msg = "The pagination cursor is malformed: it must be an ASCII string from a previous page."
        raise InvalidCursor(msg)
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        msg = "The pagination cursor is malformed: it is not base64url text."
        raise InvalidCursor(msg) from exc
