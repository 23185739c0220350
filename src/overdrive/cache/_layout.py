r"""The binary layout of one cache entry stored as one Redis value.

::

    offset  size  field
    0       4     format marker b"OE1\x00" (a value without it is foreign or corrupt: a miss)
    4       8     fresh_until   little-endian float64, absolute seconds
    12      8     refresh_at    float64
    20      8     stale_until   float64
    28      8     expires_at    float64
    36      8     delta         float64, seconds the load took (scales early refresh)
    44      2     tag count     uint16
    46      ...   per tag: generation int64, name length uint16, name UTF-8
    ...     ...   payload: the codec bytes (which carry the codec's own marker)

Fixed-width fields first, so an untagged entry is decoded with one `unpack_from` and one slice.
"""

from __future__ import annotations

import struct

from overdrive.cache._entry import Entry
from overdrive.exceptions import SerializationError

__all__ = ["MARKER", "pack", "unpack"]

MARKER = b"OE1\x00"
_HEAD = struct.Struct("<4s5dH")
_TAG = struct.Struct("<qH")
_MAX_TAGS = 0xFFFF


def pack(entry: Entry) -> bytes:
    """The stored bytes for `entry`, whose `value` must already be codec bytes.

    Raises:
        SerializationError: The value is not bytes, or the entry carries too many tags or a tag name too long.

    """
    value = entry.value
    if not isinstance(value, bytes | bytearray | memoryview):
        msg = f"A Redis tier stores codec bytes; got a value of type {type(value).__qualname__}."
        raise SerializationError(msg)
    tags = entry.tags
    if len(tags) > _MAX_TAGS or len(entry.gens) != len(tags):
        msg = f"An entry must carry at most {_MAX_TAGS} tags, each with one generation."
        raise SerializationError(msg)
    parts = [
        _HEAD.pack(
            MARKER,
            entry.fresh_until,
            entry.refresh_at,
            entry.stale_until,
            entry.expires_at,
            entry.delta,
            len(tags),
        )
    ]
    for tag, gen in zip(tags, entry.gens, strict=True):
        name = tag.encode()
        if len(name) > _MAX_TAGS:
            msg = f"A tag name may be at most {_MAX_TAGS} bytes long; {tag[:40]!r}... is {len(name)}."
            raise SerializationError(msg)
        parts.append(_TAG.pack(gen, len(name)))
        parts.append(name)
    parts.append(bytes(value))
    return b"".join(parts)


def unpack(data: bytes) -> Entry | None:
    """The entry stored in `data` (its value is the codec bytes), or None when `data` is foreign or corrupt."""
    try:
        marker, fresh_until, refresh_at, stale_until, expires_at, delta, count = _HEAD.unpack_from(data)
    except struct.error:
        return None
    if marker != MARKER:
        return None
    offset = _HEAD.size
    tags: tuple[str, ...] = ()
    gens: tuple[int, ...] = ()
    if count:
        names, numbers = [], []
        try:
            for _ in range(count):
                gen, length = _TAG.unpack_from(data, offset)
                offset += _TAG.size
                names.append(data[offset : offset + length].decode())
                numbers.append(gen)
                offset += length
        except (struct.error, UnicodeDecodeError):
            return None
        if offset > len(data):
            return None
        tags, gens = tuple(names), tuple(numbers)
    return Entry(
        data[offset:],
        fresh_until=fresh_until,
        refresh_at=refresh_at,
        stale_until=stale_until,
        expires_at=expires_at,
        tags=tags,
        gens=gens,
        delta=delta,
    )
