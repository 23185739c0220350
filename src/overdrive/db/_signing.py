"""HMAC signing shared by the tokens `overdrive.db` hands to clients (pagination cursors, read-your-writes tokens)."""

from __future__ import annotations

import hashlib
import hmac

from overdrive.exceptions import ConfigurationError

__all__ = ["MAC_SIZE", "MIN_SECRET_SIZE", "Signer"]

MAC_SIZE = 16  # bytes of HMAC-SHA256 kept: 128 bits, plenty against forgery, short in a URL
MIN_SECRET_SIZE = 16


class Signer:
    """Computes and checks truncated HMAC-SHA256 tags under one secret.

    Args:
        secret: The key, at least 16 bytes, shared by every server that checks the tags.
        purpose: What the secret is for, named in the error message (e.g. ``cursor``).

    Raises:
        ConfigurationError: The secret is shorter than 16 bytes.

    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | str, *, purpose: str) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_SIZE:
            msg = f"The {purpose} secret must be at least {MIN_SECRET_SIZE} bytes long; got {len(key)}."
            raise ConfigurationError(msg)
        self._secret = key

    def mac(self, body: bytes) -> bytes:
        """The tag of `body`."""
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:MAC_SIZE]

    def verify(self, body: bytes, mac: bytes) -> bool:
        """Whether `mac` is the tag of `body` (constant-time comparison)."""
        return hmac.compare_digest(mac, self.mac(body))
