"""Codecs: round trips, format markers, typed decoding, unserializable values and tamper detection."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from overdrive.cache import Codec, MsgspecCodec, PickleCodec
from overdrive.exceptions import ConfigurationError, SerializationError


@dataclasses.dataclass
class Product:
    id: int
    name: str
    updated: dt.datetime


SECRET = b"0123456789abcdef0123456789abcdef"
VALUES = [None, 1, 2.5, "text", [1, "a"], {"a": {"b": [True, None]}}]


class TestMsgspec:
    @pytest.mark.parametrize("value", VALUES)
    def test_plain_data_round_trips(self, value: object) -> None:
        codec = MsgspecCodec()
        assert codec.decode(codec.encode(value)) == value

    def test_it_decodes_to_the_declared_type(self) -> None:
        codec = MsgspecCodec()
        product = Product(1, "lamp", dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
        assert codec.decode(codec.encode(product), Product) == product
        assert codec.decode(codec.encode([product]), list[Product]) == [product]

    def test_every_payload_carries_the_marker(self) -> None:
        assert MsgspecCodec().encode(1).startswith(MsgspecCodec.marker)

    def test_unserializable_values_raise_a_clear_error(self) -> None:
        with pytest.raises(SerializationError, match="Cannot cache a value of type object"):
            MsgspecCodec().encode(object())

    @pytest.mark.parametrize(
        "data", [b"", b"junk", PickleCodec(secret=SECRET).encode(1), MsgspecCodec.marker + b"\xc1"]
    )
    def test_foreign_or_corrupt_bytes_raise(self, data: bytes) -> None:
        with pytest.raises(SerializationError):
            MsgspecCodec().decode(data)

    def test_a_type_mismatch_raises(self) -> None:
        codec = MsgspecCodec()
        with pytest.raises(SerializationError, match="does not match"):
            codec.decode(codec.encode("text"), int)


class TestPickle:
    @pytest.mark.parametrize("value", [*VALUES, {1, 2}, Product(1, "x", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))])
    def test_values_round_trip(self, value: object) -> None:
        codec = PickleCodec(secret=SECRET)
        assert codec.decode(codec.encode(value)) == value

    def test_a_tampered_payload_is_refused(self) -> None:
        codec = PickleCodec(secret=SECRET)
        data = bytearray(codec.encode({"admin": False}))
        data[-2] ^= 0x01
        with pytest.raises(SerializationError, match="signature does not verify"):
            codec.decode(bytes(data))

    def test_another_secret_is_refused(self) -> None:
        data = PickleCodec(secret=SECRET).encode(1)
        with pytest.raises(SerializationError, match="signature"):
            PickleCodec(secret=b"another-secret-of-16").decode(data)

    def test_a_short_secret_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="16 bytes"):
            PickleCodec(secret="short")  # noqa: S106 -- a deliberately bad test secret

    def test_unpicklable_values_raise_a_clear_error(self) -> None:
        with pytest.raises(SerializationError, match="cannot be pickled"):
            PickleCodec(secret=SECRET).encode(lambda: 1)


@pytest.mark.parametrize("codec", [MsgspecCodec(), PickleCodec(secret=SECRET)])
def test_codecs_satisfy_the_protocol(codec: Codec) -> None:
    assert isinstance(codec, Codec)
