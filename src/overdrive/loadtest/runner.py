"""Run a scenario: spawn worker processes, merge what they measure exactly, and build the `LoadResult`.

Each worker owns a share of the connections (closed model) or of the arrival rate (open model) and streams one
window of histograms per second; the parent merges windows from all workers, so every percentile of the result is
computed from the union of all recorded values, never averaged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import multiprocessing
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import orjson

from overdrive.exceptions import ConfigurationError, LoadTestError
from overdrive.loadtest._worker import WorkerConfig, worker_main
from overdrive.loadtest.histogram import Histogram
from overdrive.loadtest.result import LatencyStats, LoadResult, NameResult, TimelinePoint

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from overdrive.loadtest.scenario import Scenario

__all__ = ["LoadOptions", "Progress", "Stage", "check_target", "default_procs", "run_load"]

_SATURATED_CPU = 0.95
_RATE_SHORTFALL = 0.01


@dataclass(frozen=True)
class Stage:
    """Ramp the arrival rate linearly to `target` requests/s over `duration_s` seconds (open model)."""

    duration_s: float
    target: float


def default_procs() -> int:
    """Worker processes to use by default: every core but one, and at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """How hard and how long to drive.

    Attributes:
        connections: closed model: connections kept busy; open model: connections opened up front.
        rate: open model: requests/s (the start rate when `stages` are given); None means the closed model.
        stages: open model: ramps that follow `rate`, k6-style.
        duration_s: how long to send (the sum of the stages when they are given).
        max_requests: stop after this many requests in all (None: no limit besides time).
        procs: worker processes (default: `default_procs()`).
        timeout_s: a request unanswered this long counts as an error and its connection is replaced.
        max_connections: open model: ceiling on connections opened to keep up with the schedule.
        late_ms: open model: a request sent this much after its intended time counts as late.
        allow_hosts: hosts other than loopback that may be targeted (the project's own test hosts).
        cpus: cores to pin the workers to, shared round-robin (empty: no pinning).

    """

    connections: int = 64
    rate: float | None = None
    stages: tuple[Stage, ...] = ()
    duration_s: float = 10.0
    max_requests: int | None = None
    procs: int = field(default_factory=default_procs)
    timeout_s: float = 10.0
    max_connections: int = 10_000
    late_ms: float = 10.0
    allow_hosts: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.connections < 1:
            problems.append("at least one connection")
        if self.rate is not None and self.rate < 0:
            problems.append("a rate of zero or more")
        if self.duration_s <= 0 and not self.stages:
            problems.append("a positive duration")
        if self.max_requests is not None and self.max_requests < 1:
            problems.append("a request limit of at least one")
        if self.procs < 1:
            problems.append("at least one worker process")
        if self.timeout_s <= 0:
            problems.append("a positive timeout")
        if any(s.duration_s <= 0 or s.target < 0 for s in self.stages):
            problems.append("stages with positive durations and non-negative targets")
        if problems:
            msg = f"A load run needs {', '.join(problems)}."
            raise ConfigurationError(msg)

    @property
    def open_model(self) -> bool:
        """Whether requests follow an arrival schedule (rate or stages given)."""
        return self.rate is not None or bool(self.stages)

    @property
    def total_duration_s(self) -> float:
        """The run's sending time."""
        return sum(s.duration_s for s in self.stages) if self.stages else self.duration_s

    def schedule(self) -> tuple[tuple[float, float, float], ...]:
        """The whole run's (seconds, start rate, end rate) segments."""
        if not self.open_model:
            return ()
        start = self.rate or 0.0
        if not self.stages:
            return ((self.duration_s, start, start),)
        segments = []
        for stage in self.stages:
            segments.append((stage.duration_s, start, stage.target))
            start = stage.target
        return tuple(segments)

    def target_rate(self) -> float | None:
        """The mean scheduled arrival rate over the run."""
        schedule = self.schedule()
        if not schedule:
            return None
        total = sum(seconds * (a + b) / 2 for seconds, a, b in schedule)
        return total / sum(seconds for seconds, _, _ in schedule)


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Live figures, about once a second."""

    elapsed_s: float
    duration_s: float
    completed: int
    errors: int
    rate: float
    """Answered requests in the last whole second."""
    p99_ms: float
    """p99 latency of the last whole second."""


def check_target(host: str, port: int, allow_hosts: Sequence[str] = (), timeout_s: float = 2.0) -> None:
    """Refuse targets other than loopback and allowed hosts, and fail fast when nothing listens.

    Raises:
        ConfigurationError: the host is not loopback nor allowed.
        LoadTestError: the target cannot be reached.

    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        msg = f"Cannot resolve the target host {host!r}: {exc.strerror}."
        raise LoadTestError(msg) from exc
    loopback = all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
    if not loopback and host not in allow_hosts:
        msg = (
            f"Refusing to load {host}: only loopback targets are allowed unless the host is named with "
            "--allow-host (load tests stay on this machine and the project's own test hosts)."
        )
        raise ConfigurationError(msg)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        msg = f"Cannot connect to {host}:{port}: {exc.strerror or exc}. Is the server running?"
        raise LoadTestError(msg) from exc


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Window:
    """One second merged across workers."""

    __slots__ = ("errors", "latency", "reported")

    def __init__(self, names: int) -> None:
        self.latency = [Histogram() for _ in range(names)]
        self.errors = [0] * names
        self.reported = 0


class _Aggregator:
    def __init__(self, scenario: Scenario, options: LoadOptions, procs: int) -> None:
        n = len(scenario.names)
        self.names = scenario.names
        self.procs = procs
        self.latency = [Histogram() for _ in range(n)]
        self.service = [Histogram() for _ in range(n)] if options.open_model else None
        self.errors = [0] * n
        self.statuses: list[Counter[str]] = [Counter() for _ in range(n)]
        self.transport_errors: Counter[str] = Counter()
        self.windows: dict[int, _Window] = {}
        self.timeline: list[TimelinePoint] = []
        self.name_timelines: list[list[TimelinePoint]] = [[] for _ in range(n)]
        self.cpu = [0.0] * procs
        self.wall = [0.0] * procs
        self.sent = [0] * procs
        self.late = [0] * procs
        self.dropped = [0] * procs
        self.done: dict[int, dict[str, Any]] = {}

    def add(self, message: dict[str, Any]) -> None:
        worker = message["worker"]
        if message["type"] == "done":
            self.done[worker] = message
            return
        window = self.windows.setdefault(message["window"], _Window(len(self.names)))
        for i, data in enumerate(message["latency"]):
            if data is not None:
                histogram = Histogram.from_dict(data)
                self.latency[i].merge(histogram)
                window.latency[i].merge(histogram)
        if self.service is not None and message["service"] is not None:
            for i, data in enumerate(message["service"]):
                if data is not None:
                    self.service[i].merge(Histogram.from_dict(data))
        for i, count in enumerate(message["errors"]):
            self.errors[i] += count
            window.errors[i] += count
        for i, statuses in enumerate(message["statuses"]):
            self.statuses[i].update(statuses)
        self.transport_errors.update(message["transport_errors"])
        self.cpu[worker] += message["cpu_s"]
        self.wall[worker] += message["wall_s"]
        self.sent[worker] = message["sent"]
        self.late[worker] = message["late"]
        self.dropped[worker] = message["dropped"]
        window.reported += 1
        if window.reported == self.procs:
            self._close_window(message["window"])

    def _close_window(self, index: int) -> None:
        window = self.windows.pop(index)
        total = Histogram()
        for i, histogram in enumerate(window.latency):
            total.merge(histogram)
            if histogram.count:
                self.name_timelines[i].append(_point(index, histogram, window.errors[i]))
        self.timeline.append(_point(index, total, sum(window.errors)))

    def finish(self) -> None:
        for index in sorted(self.windows):
            self._close_window(index)

    @property
    def completed(self) -> int:
        return sum(h.count for h in self.latency)


def _point(second: int, histogram: Histogram, errors: int) -> TimelinePoint:
    values = histogram.percentiles((50.0, 90.0, 95.0, 99.0)) if histogram.count else {}
    return TimelinePoint(
        second=second,
        requests=histogram.count,
        errors=errors,
        p50=values.get(50.0, 0) / 1000,
        p90=values.get(90.0, 0) / 1000,
        p95=values.get(95.0, 0) / 1000,
        p99=values.get(99.0, 0) / 1000,
        max=(histogram.max if histogram.count else 0) / 1000,
    )


def run_load(
    scenario: Scenario, options: LoadOptions, *, on_progress: Callable[[Progress], None] | None = None
) -> LoadResult:
    """Drive `scenario` with `options` and return what was measured.

    Raises:
        ConfigurationError: the target is not allowed.
        LoadTestError: the target is unreachable, or a worker failed.

    """
    check_target(scenario.host, scenario.port, options.allow_hosts)
    procs = options.procs
    if not options.open_model:
        procs = min(procs, options.connections)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    configs = _worker_configs(scenario, options, procs)
    context = multiprocessing.get_context("spawn")
    pipes: list[Pipe] = []
    processes = []
    for config in configs:
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=worker_main, args=(child, config), daemon=True)
        with _main_script_hidden():
            process.start()
        child.close()
        if options.cpus and hasattr(os, "sched_setaffinity") and process.pid is not None:
            os.sched_setaffinity(process.pid, {options.cpus[config.index % len(options.cpus)]})
        pipes.append(parent)
        processes.append(process)
    aggregate = _Aggregator(scenario, options, procs)
    try:
        _start_together(pipes)
        started = time.perf_counter()
        _collect(pipes, aggregate, options, started, on_progress)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    aggregate.finish()
    return _result(scenario, options, aggregate, started_at)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Keep a spawned worker from re-running the main script or module, as `spawn` otherwise does.

    A worker needs nothing from `__main__` (its config is plain data, its code lives here), and for `overdrive
    load` the script is the whole CLI: importing it again costs each worker ~0.16 s of CPU before the first request.
    """
    main = sys.modules["__main__"]
    path, spec = main.__dict__.pop("__file__", None), main.__spec__  # `python script.py`, `python -m module`
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = spec
        if path is not None:
            main.__file__ = path


def _start_together(pipes: list[Pipe], timeout_s: float = 60.0) -> None:
    """Wait until every worker is ready, then give them all the same start time."""
    waiting = set(range(len(pipes)))
    deadline = time.monotonic() + timeout_s
    while waiting:
        ready = wait([pipes[i] for i in waiting], timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            msg = f"{len(waiting)} load worker(s) did not start within {timeout_s:g} s."
            raise LoadTestError(msg)
        for pipe in ready:
            index = pipes.index(pipe)  # type: ignore[arg-type]
            try:
                message = orjson.loads(pipe.recv_bytes())  # type: ignore[union-attr]
            except EOFError:
                msg = f"Load worker {index} exited before it was ready."
                raise LoadTestError(msg) from None
            if message["type"] == "error":
                msg = f"Load worker {index} failed: {message['message']}"
                raise LoadTestError(msg)
            waiting.discard(index)
    start = orjson.dumps({"start_at": time.time() + 0.05})
    for pipe in pipes:
        pipe.send_bytes(start)


def _collect(
    pipes: list[Pipe],
    aggregate: _Aggregator,
    options: LoadOptions,
    started: float,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    open_pipes = list(pipes)
    hard_stop = started + options.total_duration_s + options.timeout_s + 30
    last_report = 0.0
    while open_pipes:
        if time.perf_counter() > hard_stop:
            msg = "The load workers did not finish in time; the run was abandoned."
            raise LoadTestError(msg)
        for pipe in wait(open_pipes, timeout=0.5):
            try:
                data = pipe.recv_bytes()  # type: ignore[union-attr]
            except EOFError:
                open_pipes.remove(pipe)  # type: ignore[arg-type]
                continue
            message = orjson.loads(data)
            if message["type"] == "error":
                msg = f"Load worker {message['worker']} failed: {message['message']}"
                raise LoadTestError(msg)
            aggregate.add(message)
        now = time.perf_counter()
        if on_progress is not None and now - last_report >= 0.5:  # noqa: PLR2004
            last_report = now
            on_progress(_progress(aggregate, options, now - started))


def _progress(aggregate: _Aggregator, options: LoadOptions, elapsed: float) -> Progress:
    """Totals so far, with the rate and p99 of the last whole second all workers have reported."""
    last = aggregate.timeline[-1] if aggregate.timeline else None
    errors = sum(aggregate.errors) + sum(aggregate.transport_errors.values())
    return Progress(
        elapsed_s=min(elapsed, options.total_duration_s),
        duration_s=options.total_duration_s,
        completed=aggregate.completed,
        errors=errors,
        rate=float(last.requests) if last else 0.0,
        p99_ms=last.p99 if last else 0.0,
    )


def _worker_configs(scenario: Scenario, options: LoadOptions, procs: int) -> list[WorkerConfig]:
    connections = _split(options.connections, procs)
    limits = _split(options.max_requests, procs) if options.max_requests else [None] * procs
    configs = []
    for index in range(procs):
        ring = [(r.name, r.data) for r in scenario.prepare(stream=index)]
        share = 1.0 / procs
        stages = tuple((s, a * share, b * share) for s, a, b in options.schedule())
        configs.append(
            WorkerConfig(
                index=index,
                host=scenario.host,
                port=scenario.port,
                ring=ring,
                names=len(scenario.names),
                connections=max(1, connections[index]),
                stages=stages,
                duration_s=options.total_duration_s,
                max_requests=limits[index],
                timeout_s=options.timeout_s,
                max_connections=max(1, math.ceil(options.max_connections / procs)),
                max_backlog=max(10_000, int((options.target_rate() or 0) * share * options.timeout_s * 2)),
                late_ms=options.late_ms,
            )
        )
    return configs


def _result(scenario: Scenario, options: LoadOptions, aggregate: _Aggregator, started_at: str) -> LoadResult:
    total = Histogram()
    for histogram in aggregate.latency:
        total.merge(histogram)
    service_total = None
    if aggregate.service is not None:
        service_total = Histogram()
        for histogram in aggregate.service:
            service_total.merge(histogram)
    done = aggregate.done.values()
    elapsed = max((d["elapsed_s"] for d in done), default=options.total_duration_s)
    names = [
        NameResult(
            name=name,
            requests=aggregate.latency[i].count,
            errors=aggregate.errors[i],
            statuses=dict(sorted(aggregate.statuses[i].items())),
            latency=LatencyStats.of(aggregate.latency[i]),
            service=None if aggregate.service is None else LatencyStats.of(aggregate.service[i]),
            timeline=aggregate.name_timelines[i],
        )
        for i, name in enumerate(aggregate.names)
    ]
    cpu = [c / w if w > 0 else 0.0 for c, w in zip(aggregate.cpu, aggregate.wall, strict=True)]
    corrected = None
    if not options.open_model and aggregate.completed and elapsed > 0:
        interval_us = round(options.connections * elapsed / aggregate.completed * 1e6)
        corrected = LatencyStats.of(total.corrected(interval_us))
    result = LoadResult(
        target=scenario.base_url,
        model="open" if options.open_model else "closed",
        options=orjson.loads(orjson.dumps({k: v for k, v in asdict(options).items() if k != "cpus"})),
        started_at=started_at,
        elapsed_s=elapsed,
        procs=aggregate.procs,
        sent=sum(d["sent"] for d in done),
        completed=aggregate.completed,
        http_errors=sum(aggregate.errors),
        transport_errors=dict(sorted(aggregate.transport_errors.items())),
        unanswered=sum(d["unanswered"] for d in done),
        late=sum(d["late"] for d in done),
        dropped=sum(d["dropped"] for d in done),
        target_rate=options.target_rate(),
        latency=LatencyStats.of(total),
        service=None if service_total is None else LatencyStats.of(service_total),
        names=names,
        timeline=aggregate.timeline,
        cpu_utilization=cpu,
        corrected=corrected,
    )
    return _with_warnings(result)


def _with_warnings(result: LoadResult) -> LoadResult:
    warnings = []
    busiest = max(result.cpu_utilization, default=0.0)
    if busiest >= _SATURATED_CPU:
        warnings.append(
            f"The load generator was saturated (a worker used {busiest:.0%} of a core); figures may understate what "
            "the server can do. Add --procs or cores."
        )
    if result.target_rate and result.elapsed_s > 0:
        scheduled_rate = (result.sent + result.dropped) / result.elapsed_s
        achieved = result.sent / result.elapsed_s
        if achieved < scheduled_rate * (1 - _RATE_SHORTFALL) or result.dropped:
            warnings.append(
                f"The generator sent {achieved:,.0f} req/s against a schedule of {scheduled_rate:,.0f} req/s "
                f"({result.dropped:,} dropped); the target rate was not met."
            )
    if result.late:
        share = result.late / max(1, result.sent)
        warnings.append(f"{result.late:,} requests ({share:.2%}) were sent late; their waiting counts in the latency.")
    if not warnings:
        return result
    return LoadResult(**{**result.__dict__, "warnings": warnings})
