"""The demo's load driver: a closed loop of concurrent HTTP clients, run in a process of its own.

It is deliberately simple (httpx, one event loop) and sits behind the small `Driver` protocol, so the fast
open-model load generator of the testing step drops in without touching the runner. It issues requests until the
duration is up, then lets requests in flight finish for a bounded grace period, so slow requests at the end are
measured rather than dropped.

Run as a module it is the driver process: ``python -m overdrive.demo.driver SPEC_JSON RESULT_PATH``; it prints a
progress line (JSON) about twice a second and writes the `ProfileResult` to RESULT_PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Protocol

import httpx
import orjson

from overdrive.demo.generator import SeedPlan
from overdrive.demo.results import EndpointResult, LatencySummary, ProfileResult, profile_from_dict, summarize
from overdrive.demo.workload import ShopWorkload
from overdrive.exceptions import DemoError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["DriveProgress", "DriveSpec", "Driver", "HTTPXDriver", "main"]

_PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True, kw_only=True)
class DriveSpec:
    """What to drive: where, for how long, how hard, and which data the workload draws from."""

    base_url: str
    duration_s: float
    concurrency: int
    plan: SeedPlan = field(default_factory=SeedPlan)
    seed: int = 1
    timeout_s: float = 30.0
    grace_s: float = 10.0
    cpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        url = httpx.URL(self.base_url)
        if url.scheme not in {"http", "https"} or not url.host:
            msg = f"The drive target must be an absolute http(s) URL, not {self.base_url!r}."
            raise ValueError(msg)
        if self.duration_s <= 0 or self.concurrency < 1:
            msg = f"A drive needs a positive duration and concurrency, not {self.duration_s} s x {self.concurrency}."
            raise ValueError(msg)

    def to_json(self) -> bytes:
        """Serialise for the driver process."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> DriveSpec:
        """Rebuild a spec written by `to_json`."""
        raw = orjson.loads(data)
        raw["plan"] = SeedPlan(**raw["plan"])
        raw["cpus"] = tuple(raw["cpus"])
        return cls(**raw)


@dataclass(frozen=True, kw_only=True)
class DriveProgress:
    """A progress report from a running drive."""

    elapsed_s: float
    duration_s: float
    requests: int
    errors: int


class Driver(Protocol):
    """Drives load at a running server and measures it; one method, so drivers are easy to swap."""

    name: str

    def run(self, spec: DriveSpec, on_progress: Callable[[DriveProgress], None] | None = None) -> ProfileResult:
        """Run one measured drive; the result's `profile` is empty and `queries_per_request` None."""


class HTTPXDriver:
    """The simple driver: an httpx closed loop in a separate Python process, pinned to its own cores."""

    name = "httpx closed loop"

    def run(self, spec: DriveSpec, on_progress: Callable[[DriveProgress], None] | None = None) -> ProfileResult:
        """Start the driver process, relay its progress, and return what it measured.

        Raises:
            DemoError: the driver process failed.

        """
        with TemporaryDirectory(prefix="overdrive-drive-") as tmp:
            out = Path(tmp) / "result.json"
            command = [sys.executable, "-m", "overdrive.demo.driver", spec.to_json().decode(), str(out)]
            with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
                if spec.cpus and hasattr(os, "sched_setaffinity"):
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(proc.pid, spec.cpus)
                assert proc.stdout is not None  # noqa: S101 - guaranteed by stdout=PIPE
                for line in proc.stdout:
                    if on_progress is not None and line.startswith("{"):
                        on_progress(DriveProgress(**orjson.loads(line)))
                stderr = proc.stderr.read() if proc.stderr else ""
            if proc.returncode != 0 or not out.exists():
                msg = f"The load driver exited with status {proc.returncode}: {stderr.strip()[-2000:]}"
                raise DemoError(msg)
            return profile_from_dict(orjson.loads(out.read_bytes()))


@dataclass(slots=True)
class _Record:
    name: str
    finished_s: float
    latency_ms: float
    status: str
    error: bool


class _Drive:
    """One drive inside the driver process."""

    def __init__(self, spec: DriveSpec) -> None:
        self.spec = spec
        self.workload = ShopWorkload(spec.plan, seed=spec.seed)
        self.records: list[_Record] = []
        self.errors = 0
        self.started = 0.0

    async def run(self) -> ProfileResult:
        spec = self.spec
        limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
        async with httpx.AsyncClient(base_url=spec.base_url, limits=limits, timeout=spec.timeout_s) as client:
            self.started = time.perf_counter()
            deadline = self.started + spec.duration_s
            workers = [asyncio.create_task(self._worker(client, deadline)) for _ in range(spec.concurrency)]
            reporter = asyncio.create_task(self._report())
            _done, pending = await asyncio.wait(workers, timeout=spec.duration_s + spec.grace_s)
            for task in (*pending, reporter):
                task.cancel()
            await asyncio.gather(*pending, reporter, return_exceptions=True)
        self._print_progress()
        return self._result(time.perf_counter() - self.started)

    async def _worker(self, client: httpx.AsyncClient, deadline: float) -> None:
        while time.perf_counter() < deadline:
            request = self.workload.next()
            headers = {"content-type": "application/json"} if request.body is not None else None
            sent = time.perf_counter()
            try:
                response = await client.request(
                    request.spec.method, request.path, content=request.body, headers=headers
                )
                status, error = str(response.status_code), response.status_code >= 400  # noqa: PLR2004
            except httpx.HTTPError as exc:
                status, error = type(exc).__name__, True
            done = time.perf_counter()
            self.errors += error
            self.records.append(_Record(request.spec.name, done - self.started, (done - sent) * 1000, status, error))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY_S)
            self._print_progress()

    def _print_progress(self) -> None:
        elapsed = min(time.perf_counter() - self.started, self.spec.duration_s)
        line = {"elapsed_s": elapsed, "duration_s": self.spec.duration_s, "requests": len(self.records)}
        print(orjson.dumps({**line, "errors": self.errors}).decode(), flush=True)  # noqa: T201 - the protocol

    def _result(self, wall_s: float) -> ProfileResult:
        by_name: dict[str, list[_Record]] = defaultdict(list)
        for record in self.records:
            by_name[record.name].append(record)
        endpoints = [_endpoint(name, records, wall_s) for name, records in sorted(by_name.items())]
        return ProfileResult(
            profile="",
            duration_s=wall_s,
            requests=len(self.records),
            errors=self.errors,
            throughput=len(self.records) / wall_s,
            latency=_latency(self.records),
            queries_per_request=None,
            endpoints=endpoints,
            timeline=_timeline(self.records),
        )


def _latency(records: Sequence[_Record]) -> LatencySummary:
    return summarize([r.latency_ms for r in records])


def _endpoint(name: str, records: list[_Record], wall_s: float) -> EndpointResult:
    statuses: dict[str, int] = defaultdict(int)
    for record in records:
        statuses[record.status] += 1
    return EndpointResult(
        name=name,
        requests=len(records),
        errors=sum(r.error for r in records),
        throughput=len(records) / wall_s,
        latency=_latency(records),
        statuses=dict(sorted(statuses.items())),
    )


def _timeline(records: Sequence[_Record]) -> list[tuple[float, float, float]]:
    seconds: dict[int, list[_Record]] = defaultdict(list)
    for record in records:
        seconds[int(record.finished_s)].append(record)
    return [(float(s), float(len(rs)), _latency(rs).p95) for s, rs in sorted(seconds.items())]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the driver process: ``SPEC_JSON RESULT_PATH``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:  # noqa: PLR2004 - two positional arguments
        print("usage: python -m overdrive.demo.driver SPEC_JSON RESULT_PATH", file=sys.stderr)  # noqa: T201
        return 2
    spec = DriveSpec.from_json(args[0])
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up of the driver's own loop
    except ImportError:  # pragma: no cover - uvloop ships with the demo extra
        result = asyncio.run(_Drive(spec).run())
    else:
        result = uvloop.run(_Drive(spec).run())
    Path(args[1]).write_bytes(orjson.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
