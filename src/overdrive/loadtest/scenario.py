"""Scenarios: what a load run sends, written in Python.

A scenario is a weighted mix of request templates. Templates fill ``{placeholders}`` in the path, headers and body
from data pools (`Sequence`, `Zipf`, `Uniform`, or any callable taking a `random.Random`). Before a run, each worker
draws a ring of concrete requests and encodes them to bytes once, so the hot path only writes pre-built bytes;
the ring is large (65,536 by default) so pools with long tails are still sampled faithfully.

Example::

    products = Zipf(range(1, 100_001), exponent=1.1)
    scenario = Scenario(
        "http://127.0.0.1:8000",
        [
            RequestTemplate("/products/{id}", name="product", weight=8, values={"id": products}),
            RequestTemplate("/search?q={q}", weight=2, values={"q": Choice(["kettle", "lamp"])}),
            RequestTemplate(
                "/orders", method="POST", body='{{"user_id": {user}}}', values={"user": Uniform(1, 5000)},
                headers={"content-type": "application/json"},
            ),
        ],
    )
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
import random
import string
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from overdrive.exceptions import ConfigurationError

__all__ = [
    "Choice",
    "Pool",
    "PreparedRequest",
    "RequestTemplate",
    "Scenario",
    "Uniform",
    "Zipf",
    "load_scenario",
]

Pool = Callable[[random.Random], object]
"""Anything that draws one value from a `random.Random`."""

# HEAD is left out: its responses announce a Content-Length without a body, which the response parser cannot be
# told to expect, so the connection would wait for bytes that never come.
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FORMATTER = string.Formatter()


class Choice:
    """Draw uniformly from a fixed list of values."""

    def __init__(self, values: Iterable[object]) -> None:
        self.values = list(values)
        if not self.values:
            msg = "A Choice pool needs at least one value."
            raise ConfigurationError(msg)

    def __call__(self, rng: random.Random) -> object:
        """Draw one value."""
        return self.values[int(rng.random() * len(self.values))]


class Uniform:
    """Draw an integer uniformly from ``low`` to ``high`` inclusive."""

    def __init__(self, low: int, high: int) -> None:
        if high < low:
            msg = f"A Uniform pool needs low <= high, not {low} > {high}."
            raise ConfigurationError(msg)
        self.low, self.high = low, high

    def __call__(self, rng: random.Random) -> object:
        """Draw one value."""
        return rng.randint(self.low, self.high)


class Zipf:
    """Draw from ``values`` with Zipf-like skew: the k-th value has weight 1 / k**exponent.

    The first values are the hot ones; shuffle ``values`` first (with a seed) to spread them out.
    """

    def __init__(self, values: Iterable[object], *, exponent: float = 1.0) -> None:
        self.values = list(values)
        if not self.values or exponent < 0:
            msg = "A Zipf pool needs at least one value and a non-negative exponent."
            raise ConfigurationError(msg)
        self._cum = list(itertools.accumulate(1.0 / (k**exponent) for k in range(1, len(self.values) + 1)))

    def __call__(self, rng: random.Random) -> object:
        """Draw one value."""
        return self.values[bisect.bisect(self._cum, rng.random() * self._cum[-1])]


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedRequest:
    """One concrete request, encoded once: the index of its name and the bytes to write."""

    name: int
    data: bytes


@dataclass(frozen=True)
class RequestTemplate:
    """A kind of request in the mix.

    Attributes:
        path: path and query, with ``{placeholders}`` filled from `values`.
        method: the HTTP method.
        name: the name reports use; defaults to ``METHOD path-template``.
        weight: relative frequency in the mix.
        headers: extra headers; values may hold placeholders too.
        body: request body template (str or bytes); a str is encoded as UTF-8.
        values: the pool for each placeholder.

    """

    path: str
    method: str = "GET"
    name: str = ""
    weight: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | bytes | None = None
    values: Mapping[str, Pool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        method = self.method.upper()
        if method not in _METHODS:
            msg = f"Unsupported HTTP method {self.method!r}; use one of {', '.join(sorted(_METHODS))}."
            raise ConfigurationError(msg)
        object.__setattr__(self, "method", method)
        if not self.path.startswith("/"):
            msg = f"A request path must start with '/', not {self.path!r}."
            raise ConfigurationError(msg)
        if self.weight <= 0:
            msg = f"Request weights must be positive; {self.display_name!r} has {self.weight}."
            raise ConfigurationError(msg)
        texts = [self.path, *self.headers.values()]
        if isinstance(self.body, str):
            texts.append(self.body)
        missing = {f for text in texts for _, f, _, _ in _FORMATTER.parse(text) if f} - set(self.values)
        if missing:
            msg = f"Request {self.display_name!r} uses placeholders with no pool: {', '.join(sorted(missing))}."
            raise ConfigurationError(msg)

    @property
    def display_name(self) -> str:
        """The report name: `name`, or ``METHOD path-template``."""
        return self.name or f"{self.method} {self.path.split('?', 1)[0]}"

    def encode(self, rng: random.Random, host: str, name_index: int) -> PreparedRequest:
        """Draw values from the pools and build the request bytes."""
        drawn = {key: pool(rng) for key, pool in self.values.items()}
        path = self.path.format(**drawn)
        if isinstance(self.body, str):
            body: bytes | None = self.body.format(**drawn).encode()
        else:
            body = self.body
        lines = [f"{self.method} {path} HTTP/1.1"]
        if not any(k.lower() == "host" for k in self.headers):
            lines.append(f"Host: {host}")
        lines += [f"{k}: {v.format(**drawn)}" for k, v in self.headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return PreparedRequest(name=name_index, data=head + (body or b""))


class Scenario:
    """A target and a weighted mix of request templates."""

    def __init__(self, base_url: str, requests: Sequence[RequestTemplate], *, seed: int = 1) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            msg = f"The target must be an http:// URL with a host (https is not supported), not {base_url!r}."
            raise ConfigurationError(msg)
        if not requests:
            msg = "A scenario needs at least one request template."
            raise ConfigurationError(msg)
        self.base_url = base_url
        self.host = parts.hostname
        try:
            self.port = parts.port or 80
        except ValueError as exc:
            msg = f"The target URL {base_url!r} has an invalid port."
            raise ConfigurationError(msg) from exc
        self.prefix = parts.path.rstrip("/")
        self.requests = list(requests)
        self.seed = seed
        names = list(dict.fromkeys(r.display_name for r in self.requests))
        self.names = names
        self._name_index = [names.index(r.display_name) for r in self.requests]

    @classmethod
    def single(cls, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
               body: bytes | None = None) -> Scenario:  # fmt: skip
        """The plain-CLI case: one request, repeated."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        base = f"{parts.scheme}://{parts.netloc}"

        def literal(text: str) -> str:
            return text.replace("{", "{{").replace("}", "}}")

        template = RequestTemplate(
            literal(path), method=method, name=f"{method.upper()} {parts.path or '/'}",
            headers={k: literal(v) for k, v in (headers or {}).items()}, body=body,
        )  # fmt: skip
        return cls(base, [template])

    @property
    def host_header(self) -> str:
        """The Host header value."""
        return self.host if self.port == 80 else f"{self.host}:{self.port}"  # noqa: PLR2004

    def prepare(self, size: int = 65_536, *, stream: int = 0) -> list[PreparedRequest]:
        """Draw `size` concrete requests in mix proportions; `stream` varies the draw between workers."""
        rng = random.Random(f"{self.seed}/{stream}")
        weights = list(itertools.accumulate(r.weight for r in self.requests))
        picks = rng.choices(range(len(self.requests)), cum_weights=weights, k=size)
        host = self.host_header
        templates = [_with_prefix(t, self.prefix) if self.prefix else t for t in self.requests]
        # A template without pools draws nothing from `rng`: encoded once, its request is shared by every pick.
        fixed: dict[int, PreparedRequest] = {}
        out = []
        for index in picks:
            request = fixed.get(index)
            if request is None:
                template = templates[index]
                request = template.encode(rng, host, self._name_index[index])
                if not template.values:
                    fixed[index] = request
            out.append(request)
        return out


def _with_prefix(template: RequestTemplate, prefix: str) -> RequestTemplate:
    escaped = prefix.replace("{", "{{").replace("}", "}}")
    return RequestTemplate(
        escaped + template.path, method=template.method, name=template.display_name, weight=template.weight,
        headers=template.headers, body=template.body, values=template.values,
    )  # fmt: skip


def load_scenario(path: str | Path, *, attribute: str = "scenario") -> Scenario:
    """Import a scenario file and return its `scenario` object (a `Scenario`, or a function returning one).

    Raises:
        ConfigurationError: the file is missing, fails to import, or defines no usable scenario.

    """
    file = Path(path)
    if not file.is_file():
        msg = f"The scenario file {str(file)!r} does not exist."
        raise ConfigurationError(msg)
    spec = importlib.util.spec_from_file_location(f"overdrive_scenario_{abs(hash(file.resolve()))}", file)
    if spec is None or spec.loader is None:
        msg = f"The scenario file {str(file)!r} cannot be imported as Python."
        raise ConfigurationError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        msg = f"The scenario file {str(file)!r} failed to import: {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from exc
    found: Any = getattr(module, attribute, None)
    if callable(found) and not isinstance(found, Scenario):
        found = found()
    if not isinstance(found, Scenario):
        msg = f"The scenario file {str(file)!r} must define `{attribute}` as a Scenario (or a function returning one)."
        raise ConfigurationError(msg)
    return found
