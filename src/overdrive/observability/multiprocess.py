"""Prometheus exposition that is right with several worker processes: a directory of per-worker snapshots.

With ``--workers N`` each scrape reaches one worker, so every worker publishes its counts to a shared directory
and whichever worker serves ``/metrics`` sums them. Layout of the directory:

- ``w-<boot>-<pid>-<start>-<nonce>.json``: one live worker's latest snapshot, rewritten whole about once a second
  by a background thread (and on every scrape it serves) through a temporary file and `os.replace`, so readers see
  the old or the new snapshot, never half of one. The request path never touches it.
- ``retired.json``: the summed counters of every worker that has gone (and, during a sweep, the names folded).
- ``lock``: the `flock` that sweeps and scrapes hold exclusively.

A sweep, under the lock, folds each dead worker's file into ``retired.json`` (written atomically, together with
the folded names) and only then unlinks it; a sweeper killed between the two steps leaves a file that the next
sweep finds already listed and just removes, so a worker is counted exactly once. Liveness is pid plus start time
plus boot id (see `_process`), so a reused pid is not taken for the dead writer. Gauges (in-flight) of dead workers
are dropped. A scrape sweeps first, then sums ``retired.json`` and the live files, all under the lock: counters
never go backwards, and the files read per scrape are the live workers' plus one, however many workers came and went.

Why files and not one shared mmap: a fixed layout must know every label set in advance, while routes appear as
traffic arrives; a file per worker costs one small write a second and nothing per request.

The directory must not be shared across PID namespaces (containers) or hosts: liveness is judged by pid.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from overdrive.observability._process import ProcessIdentity, boot_id, current_identity, is_running
from overdrive.observability._snapshot import Snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["METRICS_DIR_ENV", "SharedMetricsStore", "SnapshotPublisher"]

METRICS_DIR_ENV: Final = "OVERDRIVE_METRICS_DIR"
_WORKER: Final = "w-"
_SUFFIX: Final = ".json"
_TMP: Final = ".tmp"
_RETIRED: Final = "retired.json"
_LOCK: Final = "lock"
_WORKER_NAME: Final = re.compile(r"w-([0-9a-f]+)-([0-9]+)-([0-9]+)-[0-9a-f]+")

logger = logging.getLogger(__name__)


class SharedMetricsStore:
    """The directory worker processes publish snapshots to, and the sums a scrape reads from it.

    Args:
        directory: created if missing; give each server (and each set of buckets) its own.
        buckets: the histogram bucket bounds every writer uses; files with another layout are ignored.

    """

    def __init__(self, directory: str | os.PathLike[str], *, buckets: tuple[float, ...]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.buckets = buckets
        self._boot = boot_id()
        self._retired_cache: tuple[bytes, Snapshot, frozenset[str]] | None = None

    def new_worker_name(self) -> str:
        """A file name stem for a writer in this process: its identity plus a nonce (one process may hold two)."""
        return f"{_WORKER}{current_identity().token}-{secrets.token_hex(4)}"

    def write(self, worker: str, data: bytes) -> None:
        """Replace `worker`'s snapshot with `data` (encoded `Snapshot` bytes) atomically."""
        tmp = self.directory / f".{worker}{_TMP}"
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:  # the directory was cleared under a running server
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
        tmp.replace(self.directory / f"{worker}{_SUFFIX}")

    def collect(self) -> Snapshot:
        """Fold dead workers, then sum the retired counters and every live worker's snapshot."""
        with self._locked(wait=True):
            retired, live, _ = self._sweep(())
            total = Snapshot(self.buckets)
            total.add(retired, gauges=False)
            for worker in live:
                snapshot = self._read(worker)
                if snapshot is not None:
                    total.add(snapshot, gauges=True)
        return total

    def sweep(self, *, wait: bool = True) -> int:
        """Fold dead workers' files into the retired totals and remove them; returns how many were folded.

        With ``wait=False`` it returns 0 at once when another process is sweeping or scraping.
        """
        with self._locked(wait=wait) as held:
            if not held:
                return 0
            return len(self._sweep(())[2])

    def retire(self, worker: str) -> None:
        """Fold `worker`'s file now, as a finished writer's, whether or not its process runs on."""
        with self._locked(wait=True):
            self._sweep({worker})

    def _sweep(self, finished: Iterable[str]) -> tuple[Snapshot, list[str], list[str]]:
        """Under the lock: fold dead (or `finished`) workers; returns the retired totals, live and folded workers."""
        finished = set(finished)
        names = self._names()
        workers = [name.removesuffix(_SUFFIX) for name in names if name.startswith(_WORKER) and name.endswith(_SUFFIX)]
        dead = [w for w in workers if w in finished or not self._running(w)]
        retired, folded = self._load_retired()
        if dead:
            retired = _copy(retired)  # the loaded one may be cached
            for worker in dead:
                if worker in folded:
                    continue  # a previous sweep folded it and stopped before unlinking
                snapshot = self._read(worker)
                if snapshot is not None:
                    retired.add(snapshot, gauges=False)
            self._store_retired(retired, dead)
            for worker in dead:
                (self.directory / f"{worker}{_SUFFIX}").unlink(missing_ok=True)
            self._store_retired(retired, [])  # the names are needed only until the files are gone
        for name in names:
            if name.startswith(f".{_WORKER}") and name.endswith(_TMP) and not self._running(name[1 : -len(_TMP)]):
                (self.directory / name).unlink(missing_ok=True)  # left by a writer that died while writing
        gone = set(dead)
        return retired, [w for w in workers if w not in gone], dead

    def _names(self) -> list[str]:
        return [path.name for path in self.directory.iterdir()]

    def _running(self, worker: str) -> bool:
        identity = _identity(worker)
        return identity is None or is_running(identity, self._boot)  # a foreign name is left alone

    def _read(self, worker: str) -> Snapshot | None:
        try:
            data = (self.directory / f"{worker}{_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return None
        return self._decode(data, worker)

    def _decode(self, data: bytes, source: str) -> Snapshot | None:
        try:
            snapshot = Snapshot.from_dict(orjson.loads(data))
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring the unreadable metrics snapshot %s in %s.", source, self.directory)
            return None
        if snapshot.buckets != self.buckets:
            logger.warning("Ignoring the metrics snapshot %s: its histogram buckets differ from ours.", source)
            return None
        return snapshot

    def _load_retired(self) -> tuple[Snapshot, frozenset[str]]:
        """The retired totals and the names last folded; parsed again only when the bytes changed."""
        try:
            data = (self.directory / _RETIRED).read_bytes()
        except FileNotFoundError:
            return Snapshot(self.buckets), frozenset()
        if self._retired_cache is not None and self._retired_cache[0] == data:
            return self._retired_cache[1], self._retired_cache[2]
        snapshot = self._decode(data, _RETIRED)
        if snapshot is None:
            return Snapshot(self.buckets), frozenset()  # counters restart from the live workers: a reset to Prometheus
        folded = frozenset(orjson.loads(data).get("folded", ()))
        self._retired_cache = (data, snapshot, folded)
        return snapshot, folded

    def _store_retired(self, retired: Snapshot, folded: list[str]) -> None:
        data: dict[str, Any] = retired.to_dict()
        data["in_flight"] = dict.fromkeys(retired.in_flight, 0)  # the gauge keeps its labels, at zero
        data["folded"] = folded
        tmp = self.directory / f".{_RETIRED}{_TMP}"
        tmp.write_bytes(orjson.dumps(data))
        tmp.replace(self.directory / _RETIRED)

    @contextmanager
    def _locked(self, *, wait: bool) -> Iterator[bool]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                # Unlock explicitly: a child forked meanwhile holds a copy of `fd`, and closing ours alone would
                # leave the lock held for as long as that child lives. A killed holder's lock goes with it.
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _copy(snapshot: Snapshot) -> Snapshot:
    copy = Snapshot(snapshot.buckets)
    copy.add(snapshot, gauges=False)
    return copy


def _identity(worker: str) -> ProcessIdentity | None:
    """The writer of a ``w-<boot>-<pid>-<start>-<nonce>`` name."""
    match = _WORKER_NAME.fullmatch(worker)
    return None if match is None else ProcessIdentity(match[1], int(match[2]), int(match[3]))


class SnapshotPublisher:
    """Publishes one writer's snapshots to a store from a daemon thread, and sweeps dead workers while at it.

    Nothing is written until there is something to count, and an unchanged snapshot is not rewritten. After a
    fork the child's copy does nothing (the child needs a publisher of its own, under its own name).

    Args:
        store: where to publish.
        take: returns the current snapshot; it runs on the publisher's thread, so it must only copy.
        interval: seconds between publications.

    """

    def __init__(self, store: SharedMetricsStore, take: Callable[[], Snapshot], *, interval: float = 1.0) -> None:
        if interval <= 0:
            msg = f"The publish interval must be positive, not {interval!r}."
            raise ValueError(msg)
        self.store = store
        self.name = store.new_worker_name()
        self.interval = interval
        self._take = take
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._last = b""
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="overdrive-metrics-publisher", daemon=True)

    def start(self) -> None:
        """Start publishing every `interval` seconds."""
        self._thread.start()

    def publish(self) -> None:
        """Write the current snapshot now (a no-op once closed, or in a forked child)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            if not self._closed:
                self._write()

    def close(self) -> None:
        """Stop the thread, publish a last time and fold this writer into the retired totals."""
        if os.getpid() != self._pid:
            return
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._write()
            if self._last:
                self.store.retire(self.name)

    def _write(self) -> None:
        snapshot = self._take()
        if not self._last and not snapshot.series and not any(snapshot.in_flight.values()):
            return
        data = snapshot.encode()
        if data != self._last:
            self.store.write(self.name, data)
            self._last = data

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish()
                self.store.sweep(wait=False)
            except OSError:
                logger.warning("Could not publish metrics to %s; will retry.", self.store.directory, exc_info=True)
