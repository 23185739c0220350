"""Opaque, HMAC-signed read-your-writes tokens.

A token is ``base64url(version || lsn || issued_ms || mac)``: one version byte, the WAL position of the holder's last
write and the Unix time it was issued (both big-endian 64-bit), and the first 16 bytes of an HMAC-SHA256 over them.
The MAC is checked before anything else is read, so a client cannot move its position or extend its lifetime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from overdrive.exceptions import ConfigurationError

__all__ = ["Token", "TokenCodec"]

VERSION = 1
MAC_SIZE = 16
MIN_SECRET_SIZE = 16
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

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | str) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_SIZE:
            msg = f"The read-your-writes secret must be at least {MIN_SECRET_SIZE} bytes long; got {len(key)}."
            raise ConfigurationError(msg)
        self._secret = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:MAC_SIZE]

    def encode(self, lsn: int, issued_at: float) -> str:
        """Return the token for a write at ``lsn`` issued at ``issued_at`` (Unix seconds)."""
        body = _BODY.pack(VERSION, lsn, max(0, int(issued_at * 1000)))
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

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
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        version, lsn, issued_ms = _BODY.unpack(body)
        if version != VERSION:
            return None
        return Token(lsn=lsn, issued_at=issued_ms / 1000)
