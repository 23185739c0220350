"""HTTP header parsing and freshness arithmetic for the response cache, and the stored response record."""

from __future__ import annotations

import hashlib
from email.utils import parsedate_to_datetime

import msgspec

__all__ = [
    "StoredResponse",
    "Variants",
    "cache_control",
    "etag_matches",
    "freshness_lifetime",
    "http_date",
    "parse_tags",
    "revalidated",
    "seconds",
    "strong_etag",
]

Headers = list[tuple[bytes, bytes]]


class StoredResponse(msgspec.Struct, frozen=True, tag="r"):
    """A stored response with what the middleware needs to decide, per request, whether it may be served.

    A `msgspec.Struct`, so it travels through a Redis tier with the default codec.

    Attributes:
        status: The status code.
        headers: The response headers as sent (minus the tag header), without `Age`.
        body: The full body.
        stored_at: When the response was received (or last revalidated), on the cache's clock.
        initial_age: The `Age` the app's response already carried, in seconds.
        lifetime: The freshness lifetime in seconds (s-maxage, else max-age, else Expires - Date).
        swr: The stale-while-revalidate window, in seconds.
        no_cache: The response said `no-cache`: every use is revalidated with the app first.
        must_revalidate: The response said `must-revalidate` or `proxy-revalidate`: never served stale.
        public: The response said `public`: it may be served to requests with `Cookie` or `Authorization`.
        shared_auth: The response said `public` or `s-maxage`: it may be served to requests with `Authorization`.
        etag: The entity tag (the app's own, or a strong hash of the body).
        origin_etag: Whether the app set `etag` itself (so it can answer a conditional revalidation).
        tags: The tags the app listed in the tag header, for purging.

    """

    status: int
    headers: Headers
    body: bytes
    stored_at: float
    initial_age: float
    lifetime: float
    swr: float
    no_cache: bool
    must_revalidate: bool
    public: bool
    shared_auth: bool
    etag: str
    origin_etag: bool
    tags: tuple[str, ...] = ()

    def age(self, now: float) -> float:
        """The current age (RFC 9111 §4.2.3, simplified: the initial `Age` plus the time since storing)."""
        return self.initial_age + max(0.0, now - self.stored_at)


class Variants(msgspec.Struct, frozen=True, tag="v"):
    """The variant index under a URL's primary key: the request headers (lower case) its `Vary` names."""

    names: tuple[str, ...]


def cache_control(value: bytes | None) -> dict[str, str]:
    """The directives of a `Cache-Control` value, lower-cased, to their argument ('' when they have none)."""
    if not value:
        return {}
    directives: dict[str, str] = {}
    for part in value.decode("latin-1").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip().strip('"')
    return directives


def seconds(directives: dict[str, str], name: str) -> float | None:
    """The delta-seconds argument of a directive, None when absent or malformed."""
    argument = directives.get(name)
    if argument is None or not argument.isdigit():
        return None
    return float(argument)


def http_date(value: bytes | None) -> float | None:
    """An HTTP date as a POSIX timestamp, None when absent or invalid."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def strong_etag(body: bytes) -> str:
    """A strong entity tag derived from the body (a 128-bit BLAKE2b digest)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches(if_none_match: bytes, etag: str) -> bool:
    """Whether an `If-None-Match` value matches `etag` under weak comparison (RFC 9110 §8.8.3.2, §13.1.2)."""
    value = if_none_match.decode("latin-1").strip()
    if value == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(candidate.strip()) == wanted for candidate in value.split(","))


def freshness_lifetime(cc: dict[str, str], fields: dict[bytes, bytes], now: float) -> float | None:
    """The explicit freshness lifetime: s-maxage, else max-age, else Expires - Date; None when there is none."""
    for directive in ("s-maxage", "max-age"):
        if directive in cc:
            return seconds(cc, directive) or 0.0
    if b"expires" in fields:
        expires = http_date(fields[b"expires"])
        if expires is None:
            return 0.0  # RFC 9111 §5.3: an invalid Expires means already expired
        date = http_date(fields.get(b"date"))
        return max(expires - (date if date is not None else now), 0.0)
    return None


def revalidated(stale: StoredResponse, headers: Headers, now: float, tag_header: bytes) -> StoredResponse:
    """The stored response refreshed by the app's 304: its headers updated, its age restarted (RFC 9111 §4.3.4)."""
    updated = {name for name, _ in headers} - {b"content-length", b"age", tag_header}
    merged = [(n, v) for n, v in stale.headers if n not in updated]
    merged += [(n, v) for n, v in headers if n in updated]
    fields = dict(merged)
    cc = cache_control(fields.get(b"cache-control"))
    fresh_for = freshness_lifetime(cc, fields, now)
    return StoredResponse(
        status=stale.status,
        headers=merged,
        body=stale.body,
        stored_at=now,
        initial_age=0.0,
        lifetime=fresh_for if fresh_for is not None else stale.lifetime,
        swr=seconds(cc, "stale-while-revalidate") or 0.0,
        no_cache="no-cache" in cc,
        must_revalidate="must-revalidate" in cc or "proxy-revalidate" in cc,
        public="public" in cc,
        shared_auth="public" in cc or "s-maxage" in cc,
        etag=stale.etag,
        origin_etag=stale.origin_etag,
        tags=stale.tags,
    )


def parse_tags(value: bytes) -> tuple[str, ...]:
    """The tags listed (comma-separated) in a tag header value."""
    return tuple(tag for part in value.decode("latin-1").split(",") if (tag := part.strip()))
