"""HTTP header parsing for the response cache: Cache-Control directives, entity tags, dates, and the stored response."""

from __future__ import annotations

import hashlib
from email.utils import parsedate_to_datetime

import msgspec

__all__ = [
    "StoredResponse",
    "Variants",
    "cache_control",
    "etag_matches",
    "http_date",
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
