"""A load worker process: runs one engine on uvloop and streams per-second windows to the parent."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from dataclasses import dataclass, replace
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import orjson

from overdrive.loadtest._engine import ClosedEngine, Engine, OpenEngine, WindowStats, quiet_parse_errors

if TYPE_CHECKING:
    from multiprocessing.connection import Connection as Pipe

__all__ = ["WorkerConfig", "worker_main"]

_NS = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """One worker's share of a run."""

    index: int
    host: str
    port: int
    ring: list[tuple[int, bytes]]
    names: int
    connections: int
    stages: tuple[tuple[float, float, float], ...]
    """Open model only: (seconds, rate at start, rate at end) for this worker; empty means closed model."""
    duration_s: float
    max_requests: int | None
    timeout_s: float
    max_connections: int
    max_backlog: int
    late_ms: float
    start_at: float = 0.0
    """Wall-clock time (`time.time()`) at which every worker starts, so their windows line up; the parent sends
    it once every worker has reported ready."""
    window_s: float = 1.0


def worker_main(pipe: Pipe, config: WorkerConfig) -> None:
    """Process entry point: run the worker, report any failure to the parent as a message."""
    try:
        import uvloop  # noqa: PLC0415 - optional, imported in the child only

        # The hot path makes no reference cycles; rare, large collections beat frequent young ones.
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        pipe.send_bytes(orjson.dumps({"type": "ready", "worker": config.index}))
        start_at = orjson.loads(pipe.recv_bytes())["start_at"]
        uvloop.run(_Worker(pipe, replace(config, start_at=start_at)).run())
    except ImportError:  # pragma: no cover - uvloop ships with overdrive's loadtest dependencies
        asyncio.run(_Worker(pipe, config).run())
    except EOFError:
        return  # the parent gave up before the start
    except Exception as exc:  # noqa: BLE001 - every failure must reach the parent, which reports it
        with contextlib.suppress(OSError):
            pipe.send_bytes(orjson.dumps({"type": "error", "worker": config.index, "message": repr(exc)}))
    finally:
        pipe.close()


def next_arrival(stages: tuple[tuple[float, float, float], ...], t_s: float) -> float:
    """When the next request is due after one due at `t_s`: the time at which one more arrival has accumulated.

    The rate is piecewise linear, so within a segment the arrivals accumulated over a step d from t are
    r(t) * d + slope * d**2 / 2; the step that makes this 1 is solved exactly, carrying over segment ends.
    Returns infinity when the schedule holds no further arrival.
    """
    need = 1.0
    start = 0.0
    for seconds, begin, end in stages:
        stop = start + seconds
        if t_s >= stop:
            start = stop
            continue
        slope = (end - begin) / seconds
        rate = begin + slope * (t_s - start)
        room = stop - t_s
        available = rate * room + slope * room * room / 2
        if available >= need:
            if slope == 0:
                return t_s + need / rate
            step = (-rate + math.sqrt(rate * rate + 2 * slope * need)) / slope
            return t_s + min(step, room)
        need -= available
        t_s = start = stop
    return math.inf


class _Worker:
    def __init__(self, pipe: Pipe, config: WorkerConfig) -> None:
        self.pipe = pipe
        self.config = config
        self.window_index = 0
        self.cpu_mark = time.process_time()
        self.wall_mark = time.perf_counter()

    def _engine(self) -> Engine:
        c = self.config
        common: dict[str, Any] = {
            "host": c.host,
            "port": c.port,
            "ring": c.ring,
            "names": c.names,
            "timeout_ns": int(c.timeout_s * _NS),
            "max_requests": c.max_requests,
        }
        if not c.stages:
            return ClosedEngine(open_model=False, **common)
        return OpenEngine(
            max_connections=c.max_connections, max_backlog=c.max_backlog, late_ns=int(c.late_ms * 1e6), **common
        )

    async def run(self) -> None:
        c = self.config
        asyncio.get_running_loop().set_exception_handler(quiet_parse_errors)
        engine = self._engine()
        await asyncio.sleep(max(0.0, c.start_at - time.time()))
        t0 = perf_counter_ns()
        self.cpu_mark, self.wall_mark = time.process_time(), time.perf_counter()
        end_ns = t0 + int(c.duration_s * _NS)
        engine.start(c.connections)  # type: ignore[attr-defined]
        tasks = [asyncio.create_task(self._windows(engine, t0)), asyncio.create_task(self._timeouts(engine))]
        if isinstance(engine, OpenEngine):
            tasks.append(asyncio.create_task(_schedule(engine, c.stages, t0, end_ns)))
        while perf_counter_ns() < end_ns and not engine.stopping:  # noqa: ASYNC110 - a deadline or a request cap
            await asyncio.sleep(min(0.05, max(0.0, (end_ns - perf_counter_ns()) / _NS)))
        engine.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(engine.drained.wait(), timeout=c.timeout_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        unanswered = engine.close_all()
        self._send_window(engine, engine.take_window())
        late = engine.late if isinstance(engine, OpenEngine) else 0
        dropped = engine.dropped if isinstance(engine, OpenEngine) else 0
        self._send(
            {
                "type": "done",
                "sent": engine.sent,
                "unanswered": unanswered,
                "opened": engine.opened,
                "late": late,
                "dropped": dropped,
                "elapsed_s": (perf_counter_ns() - t0) / _NS,
            }
        )
        await asyncio.sleep(0)

    async def _windows(self, engine: Engine, t0: int) -> None:
        step = int(self.config.window_s * _NS)
        while True:
            target = t0 + (self.window_index + 1) * step
            await asyncio.sleep(max(0.0, (target - perf_counter_ns()) / _NS))
            self._send_window(engine, engine.take_window())

    async def _timeouts(self, engine: Engine) -> None:
        while True:
            await asyncio.sleep(min(0.1, self.config.timeout_s / 4))
            engine.check_timeouts()

    def _send_window(self, engine: Engine, window: WindowStats) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        message = {
            "type": "window",
            "window": self.window_index,
            "latency": [h.to_dict() if h.count else None for h in window.latency],
            "service": None if window.service is None else [h.to_dict() if h.count else None for h in window.service],
            "errors": window.errors,
            "statuses": [{str(k): v for k, v in s.items()} for s in window.status_counts()],
            "transport_errors": window.transport_errors,
            "sent": engine.sent,
            "connections": len(engine.connections),
            "late": engine.late if isinstance(engine, OpenEngine) else 0,
            "dropped": engine.dropped if isinstance(engine, OpenEngine) else 0,
            "cpu_s": cpu - self.cpu_mark,
            "wall_s": wall - self.wall_mark,
        }
        self.cpu_mark, self.wall_mark = cpu, wall
        self.window_index += 1
        self._send(message)

    def _send(self, message: dict[str, Any]) -> None:
        message["worker"] = self.config.index
        self.pipe.send_bytes(orjson.dumps(message))


async def _schedule(engine: OpenEngine, stages: tuple[tuple[float, float, float], ...], t0: int, end_ns: int) -> None:
    """Mark requests due at their intended times, batching those that fall due between two wake-ups."""
    t_s = next_arrival(stages, 0.0) if stages and stages[0][1] <= 0 else 0.0
    next_ns = t0 + int(t_s * _NS) if math.isfinite(t_s) else end_ns
    while not engine.stopping and next_ns < end_ns:
        now = perf_counter_ns()
        while next_ns <= now and next_ns < end_ns:
            engine.due(next_ns)
            t_s = next_arrival(stages, t_s)
            next_ns = t0 + int(t_s * _NS) if math.isfinite(t_s) else end_ns
        await asyncio.sleep(max(0.0, (next_ns - perf_counter_ns()) / _NS))
