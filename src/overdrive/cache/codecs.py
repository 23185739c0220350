"""Codecs turn cached values into bytes for tiers that store bytes (Redis), and back.

Every encoded value starts with a format marker (`MARKER_LENGTH` bytes naming the codec and its version), so a
reader can tell its own entries from foreign or corrupt ones: those decode to `SerializationError`, which the
`Cache` treats as a miss. The memory tier stores live objects and never calls a codec.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any, Protocol, runtime_checkable

import msgspec

from overdrive.exceptions import ConfigurationError, SerializationError

__all__ = ["MARKER_LENGTH", "Codec", "MsgspecCodec", "PickleCodec"]

MARKER_LENGTH = 4


@runtime_checkable
class Codec(Protocol):
    """Encodes values to marked bytes and decodes them back.

    `encode` raises `SerializationError` for a value it cannot represent. `decode` raises `SerializationError` for
    bytes it did not produce (wrong marker, corrupt payload, bad signature) or that do not match `decode_as`.
    """

    def encode(self, value: object) -> bytes:
        """The marked bytes for `value`."""
        ...

    def decode(self, data: bytes, decode_as: Any = None) -> Any:
        """The value in `data`, converted to the type `decode_as` when one is given."""
        ...


class MsgspecCodec:
    """MessagePack through msgspec: the safe default.

    Decoding without a type gives plain data (dicts, lists, str, int, ...). With `decode_as` (the decorated
    function's declared return type) msgspec validates and rebuilds the type: dataclasses, `msgspec.Struct`,
    datetimes, UUIDs, enums and their containers come back as themselves. Nothing in the payload can run code.
    """

    marker = b"OM1\x00"

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {None: msgspec.msgpack.Decoder()}

    def encode(self, value: object) -> bytes:
        """The marked MessagePack bytes for `value`."""
        try:
            return self.marker + self._encoder.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            kind = type(value).__qualname__
            msg = f"Cannot cache a value of type {kind}: {exc}. Use a type msgspec encodes, or PickleCodec."
            raise SerializationError(msg) from exc

    def decode(self, data: bytes, decode_as: Any = None) -> Any:
        """The value in `data`, validated against `decode_as` when given."""
        if data[:MARKER_LENGTH] != self.marker:
            msg = "The entry was not written by MsgspecCodec (unknown format marker)."
            raise SerializationError(msg)
        decoder = self._decoders.get(decode_as)
        if decoder is None:
            decoder = self._decoders[decode_as] = msgspec.msgpack.Decoder(decode_as)
        try:
            return decoder.decode(memoryview(data)[MARKER_LENGTH:])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            msg = f"The entry is corrupt or does not match the expected type: {exc}."
            raise SerializationError(msg) from exc


class PickleCodec:
    """Pickle, for values no safe codec represents: an explicit opt-in, every payload signed with HMAC-SHA256.

    A payload whose signature does not verify is never unpickled (a tampered or foreign entry is a miss). Share
    the secret only between processes that trust each other; rotate it by changing it (old entries become misses).

    Args:
        secret: The HMAC key, at least 16 bytes.

    """

    marker = b"OP1\x00"
    _DIGEST = 32

    def __init__(self, *, secret: bytes | str) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:  # noqa: PLR2004 -- the HMAC key length floor, stated in the message
            msg = "PickleCodec needs a secret of at least 16 bytes."
            raise ConfigurationError(msg)
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, value: object) -> bytes:
        """The marked, signed pickle of `value`."""
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            msg = f"Cannot cache a value of type {type(value).__qualname__}: it cannot be pickled ({exc})."
            raise SerializationError(msg) from exc
        return self.marker + self._sign(payload) + payload

    def decode(self, data: bytes, decode_as: Any = None) -> Any:  # noqa: ARG002 -- the Codec signature
        """The value in `data`, once its signature verifies (`decode_as` is not needed: pickle keeps types)."""
        if data[:MARKER_LENGTH] != self.marker:
            msg = "The entry was not written by PickleCodec (unknown format marker)."
            raise SerializationError(msg)
        start = MARKER_LENGTH + self._DIGEST
        signature, payload = data[MARKER_LENGTH:start], data[start:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            msg = "The entry's signature does not verify: it was tampered with or signed with another secret."
            raise SerializationError(msg)
        try:
            return pickle.loads(payload)  # noqa: S301 -- signature verified above
        except Exception as exc:
            msg = f"The entry is signed but cannot be unpickled: {exc}."
            raise SerializationError(msg) from exc
