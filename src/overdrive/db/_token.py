"""Opaque, HMAC-signed read-your-writes tokens.

A token is ``base64url(version || lsn || issued_ms || mac)``: one version byte, the WAL position of the holder's last
write and the Unix time it was issued (both big-endian 64-bit), and the first 16 bytes of an HMAC-SHA256 over them.
The MAC is checked before anything else is read, so a client cannot move its position or extend its lifetime.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from overdrive.db._signing import MAC_SIZE, Signer

__all__ = ["Token", "TokenCodec"]

VERSION = 1
_BODY = struct.Struct(">BQQ")
_SIZE = _BODY.size + MAC_SIZE


@dataclass(frozen=True, slots=True)
class Token:
    """A verified token: the WAL position reads must have replayed, and when it was issued (Unix seconds)."""

    lsn: int
    issued_at: float


class TokenCodec:
    """Signs WAL positions into tokens and verifies them.

    Args:
        secret: The HMAC key, at least 16 bytes, shared by every server that reads the tokens.

    Raises:
        ConfigurationError: The secret is shorter than 16 bytes.

    """

    __slots__ = ("_signer",)

    def __init__(self, secret: bytes | str) -> None:
        self._signer = Signer(secret, purpose="read-your-writes")

    def encode(self, lsn: int, issued_at: float) -> str:
        """Return the token for a write at ``lsn`` issued at ``issued_at`` (Unix seconds)."""
        body = _BODY.pack(VERSION, lsn, max(0, int(issued_at * 1000)))
        return base64.urlsafe_b64encode(body + self._signer.mac(body)).rstrip(b"=").decode("ascii")

    def decode(self, text: str) -> Token | None:
        """Return the token in ``text``, or None when it is malformed, of another version or not signed by us."""
        if len(text) > 2 * _SIZE or not text.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _SIZE:
            return None
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not self._signer.verify(body, mac):
            return None
        version, lsn, issued_ms = _BODY.unpack(body)
        if version != VERSION:
            return None
        return Token(lsn=lsn, issued_at=issued_ms / 1000)
