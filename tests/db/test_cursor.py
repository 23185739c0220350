"""Cursors round-trip typed values exactly and refuse anything tampered, foreign, outdated or malformed."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from overdrive.db import Paginator
from overdrive.db._cursor import CursorCodec
from overdrive.db._signing import MAC_SIZE
from overdrive.exceptions import InvalidCursor, PaginationError
from tests.db.models import Item

SECRET = b"test-secret-0123456789"
FINGERPRINT = b"\x01" * 8
VALUES = (
    None,
    True,
    0,
    -(2**63),
    2.5,
    "naïve",
    b"\x00\xff",
    dt.datetime(2026, 3, 1, 12, 0, 0, 123456),
    dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.date(2026, 3, 1),
    dt.time(23, 59, 59, 999999),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    Decimal("1.10"),
    Decimal("-0.000000000000000000001"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
)


def _resign(codec: CursorCodec, signed: bytes) -> str:
    token = signed + codec._signer.mac(signed)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


class TestRoundTrip:
    def test_every_supported_type_comes_back_with_the_same_type_and_value(self) -> None:
        codec = CursorCodec(SECRET)
        decoded = codec.decode(codec.encode(FINGERPRINT, VALUES), FINGERPRINT, len(VALUES))
        assert decoded == VALUES
        assert [type(v) for v in decoded] == [type(v) for v in VALUES]
        assert str(decoded[VALUES.index(Decimal("1.10"))]) == "1.10"

    def test_a_cursor_is_url_safe_text(self) -> None:
        cursor = CursorCodec(SECRET).encode(FINGERPRINT, VALUES)
        assert cursor.isascii()
        assert not set(cursor) & set("+/=")

    def test_an_unsupported_type_is_refused_when_encoding(self) -> None:
        with pytest.raises(PaginationError, match="type list"):
            CursorCodec(SECRET).encode(FINGERPRINT, [[1, 2]])


class TestRefusals:
    @pytest.fixture
    def codec(self) -> CursorCodec:
        return CursorCodec(SECRET)

    @pytest.fixture
    def cursor(self, codec: CursorCodec) -> str:
        return codec.encode(FINGERPRINT, (1, "a"))

    def test_every_flipped_character_is_detected(self, codec: CursorCodec, cursor: str) -> None:
        for index in range(len(cursor) - 1):  # the last character may carry padding bits only
            flipped = "A" if cursor[index] != "A" else "B"
            with pytest.raises(InvalidCursor):
                codec.decode(cursor[:index] + flipped + cursor[index + 1 :], FINGERPRINT, 2)

    def test_a_cursor_signed_with_another_secret_is_refused(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor, match="signature does not match"):
            CursorCodec(b"another-secret-0123456789").decode(cursor, FINGERPRINT, 2)

    def test_a_cursor_for_another_ordering_is_refused(self, codec: CursorCodec, cursor: str) -> None:
        with pytest.raises(InvalidCursor, match="different ordering"):
            codec.decode(cursor, b"\x02" * 8, 2)
        with pytest.raises(InvalidCursor, match="different ordering"):
            codec.decode(cursor, FINGERPRINT, 3)

    def test_another_version_is_refused_with_its_number(self, codec: CursorCodec, cursor: str) -> None:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        with pytest.raises(InvalidCursor, match="has version 2, but this server reads version 1"):
            codec.decode(_resign(codec, b"\x02" + raw[1:-MAC_SIZE]), FINGERPRINT, 2)

    def test_a_signed_but_unreadable_payload_is_refused(self, codec: CursorCodec) -> None:
        with pytest.raises(InvalidCursor, match="cannot be read"):
            codec.decode(_resign(codec, b"\x01\xc1\xc1"), FINGERPRINT, 2)
        with pytest.raises(InvalidCursor, match="cannot be read"):
            codec.decode(_resign(codec, b"\x01\x92\xc4\x08" + FINGERPRINT + b"\x91\x92\xa1?\x01"), FINGERPRINT, 1)

    @pytest.mark.parametrize("garbage", ["", "abc", "!!!not base64!!!", "é", "A" * 5, None, 42])
    def test_garbage_is_refused(self, codec: CursorCodec, garbage: object) -> None:
        with pytest.raises(InvalidCursor, match=r"^The pagination cursor"):
            codec.decode(garbage, FINGERPRINT, 2)  # type: ignore[arg-type]

    def test_invalid_cursor_is_a_value_error_for_web_apps_to_map_to_400(self) -> None:
        assert issubclass(InvalidCursor, ValueError)


@pytest.mark.anyio
class TestThroughPaginate:
    async def test_a_cursor_from_one_ordering_is_refused_by_another(self, session: AsyncSession) -> None:
        paginator = Paginator(secret=SECRET)
        page = await paginator.paginate(session, sa.select(Item).order_by(Item.bucket, Item.id), first=3)
        assert page.next_cursor is not None
        other = sa.select(Item).order_by(Item.bucket.desc(), Item.id)
        with pytest.raises(InvalidCursor, match="different ordering"):
            await paginator.paginate(session, other, after=page.next_cursor)

    async def test_a_cursor_from_another_secret_is_refused(self, session: AsyncSession) -> None:
        query = sa.select(Item).order_by(Item.id)
        page = await Paginator(secret=SECRET).paginate(session, query, first=3)
        assert page.next_cursor is not None
        with pytest.raises(InvalidCursor, match="another server"):
            await Paginator(secret=SECRET[::-1]).paginate(session, query, before=page.next_cursor)
