"""Metrics shared by worker processes: summed across workers, dead workers folded exactly once, nothing piles up."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from overdrive.observability import (
    METRICS_DIR_ENV,
    ObservabilityMiddleware,
    RequestMetrics,
    SharedMetricsStore,
    _process,
)
from overdrive.observability._process import ProcessIdentity, boot_id, current_identity, identity_of, is_running
from overdrive.observability._snapshot import SeriesTotals, Snapshot
from overdrive.observability.metrics import DEFAULT_BUCKETS
from tests.observability import mp_workers
from tests.services import free_port

SPAWN = multiprocessing.get_context("spawn")
COUNT = "http_server_request_duration_seconds_count"
SUM = "http_server_request_duration_seconds_sum"
IN_FLIGHT = "http_server_requests_in_flight"
ROUTE = ("GET", "/items/{id}", "2xx")


def _samples(text: str) -> dict[str, float]:
    """Each sample name's total over all label sets (the text must parse as Prometheus exposition)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0) + sample.value
    return totals


def _snapshot(requests: int, in_flight: int = 0, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> Snapshot:
    counts = [0] * (len(buckets) + 1)
    counts[2] = requests
    return Snapshot(buckets, {"GET": in_flight}, {ROUTE: SeriesTotals(counts, 0.02 * requests)})


def _writer(identity: ProcessIdentity, nonce: int = 0) -> str:
    return f"w-{identity.token}-{nonce:08x}"


def _dead(nonce: int) -> str:
    """A writer name whose pid runs but was started at another time: the pid was reused, the writer is gone."""
    me = current_identity()
    return _writer(ProcessIdentity(me.boot, me.pid, me.start + 1), nonce)


def _worker_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("w-*.json"))


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(predicate) or not predicate():
        if time.monotonic() > deadline:
            pytest.fail("The condition did not come true in time.")
        time.sleep(0.02)


class _Killed(BaseException):
    """A process death in the middle of a sweep."""


class TestProcessIdentity:
    def test_this_process_is_running(self) -> None:
        assert is_running(current_identity(), boot_id())

    def test_a_reused_pid_is_not_the_writer(self) -> None:
        me = current_identity()
        assert not is_running(ProcessIdentity(me.boot, me.pid, me.start + 1), boot_id())

    def test_a_process_from_another_boot_is_gone(self) -> None:
        me = current_identity()
        assert not is_running(ProcessIdentity("deadbeef", me.pid, me.start), boot_id())

    def test_a_killed_child_is_gone_before_it_is_reaped(self) -> None:
        child = subprocess.Popen(["sleep", "30"])
        try:
            identity = identity_of(child.pid)
            assert identity is not None
            assert is_running(identity, boot_id())
            os.kill(child.pid, signal.SIGKILL)
            _wait_for(lambda: not is_running(identity, boot_id()))  # a zombie: its parent has not waited yet
            assert identity_of(child.pid) is not None, "the pid still has an entry (the zombie)"
        finally:
            child.kill()
            child.wait()
        assert not is_running(identity, boot_id())
        assert identity_of(child.pid) is None

    def test_an_unreadable_proc_entry_is_not_taken_for_a_dead_process(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        me = current_identity()
        (tmp_path / str(me.pid) / "stat").mkdir(parents=True)  # reading it fails, but not with "no such file"
        monkeypatch.setattr(_process, "_PROC", tmp_path)
        with pytest.raises(IsADirectoryError):
            is_running(me, me.boot)


class TestStore:
    def test_live_writers_are_summed_with_their_gauges(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        me = current_identity()
        store.write(_writer(me, 1), _snapshot(3, in_flight=1).encode())
        store.write(_writer(me, 2), _snapshot(4, in_flight=2).encode())
        total = store.collect()
        assert total.series[ROUTE].count == 7
        assert total.series[ROUTE].total == pytest.approx(0.14)
        assert total.in_flight == {"GET": 3}

    def test_a_dead_writer_is_folded_once_its_gauges_dropped_and_its_file_removed(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_writer(current_identity()), _snapshot(3, in_flight=1).encode())
        store.write(_dead(1), _snapshot(5, in_flight=4).encode())
        total = store.collect()
        assert total.series[ROUTE].count == 8
        assert total.in_flight == {"GET": 1}
        assert _worker_files(tmp_path) == [f"{_writer(current_identity())}.json"]
        assert store.sweep() == 0
        assert store.collect().series[ROUTE].count == 8, "folded once, not again"

    def test_a_sweep_stopped_before_unlinking_does_not_count_twice(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_dead(1), _snapshot(5).encode())

        def killed(path: Path, missing_ok: bool = False) -> None:
            raise _Killed

        with monkeypatch.context() as patch:
            patch.setattr(Path, "unlink", killed)  # the sweeper dies after writing retired.json, before unlinking
            with pytest.raises(_Killed):
                store.sweep()
        assert _worker_files(tmp_path) == [f"{_dead(1)}.json"]
        assert store.collect().series[ROUTE].count == 5
        assert _worker_files(tmp_path) == []
        assert store.collect().series[ROUTE].count == 5

    def test_two_concurrent_sweepers_fold_each_dead_writer_exactly_once(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        for round_ in range(3):
            for nonce in range(150):
                store.write(_dead(round_ * 1000 + nonce), _snapshot(nonce + 1).encode())
            start, results = SPAWN.Barrier(2), SPAWN.Queue()
            sweepers = [SPAWN.Process(target=mp_workers.sweep, args=(str(tmp_path), start, results)) for _ in "ab"]
            for sweeper in sweepers:
                sweeper.start()
            folded = sorted(results.get(timeout=60) for _ in sweepers)
            for sweeper in sweepers:
                sweeper.join()
            assert sum(folded) == 150, f"each file folded by exactly one sweeper: {folded}"
            assert _worker_files(tmp_path) == []
            assert store.collect().series[ROUTE].count == (round_ + 1) * sum(range(1, 151))

    def test_a_thousand_restarts_leave_one_retired_file(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        for nonce in range(1_000):
            store.write(_dead(nonce), _snapshot(2, in_flight=1).encode())
        store.write(_writer(current_identity()), _snapshot(1).encode())
        assert len(_worker_files(tmp_path)) == 1_001
        total = store.collect()
        assert total.series[ROUTE].count == 2_001
        assert total.in_flight == {"GET": 0}
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["lock", "retired.json", f"{_writer(current_identity())}.json"]
        )
        assert len((tmp_path / "retired.json").read_bytes()) < 1_000, "the retired file does not grow with restarts"

    def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        live = tmp_path / f".{_writer(current_identity())}.tmp"
        dead = tmp_path / f".{_dead(1)}.tmp"
        live.write_bytes(b"{")
        dead.write_bytes(b"{")
        store.sweep()
        assert live.exists()
        assert not dead.exists()

    def test_unreadable_and_foreign_snapshots_are_ignored(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        me = current_identity()
        store.write(_writer(me, 1), _snapshot(3).encode())
        store.write(_writer(me, 2), b"{not json")
        store.write(_writer(me, 3), _snapshot(9, buckets=(0.1, 1.0)).encode())
        store.write(_dead(4), _snapshot(9, buckets=(0.1, 1.0)).encode())
        (tmp_path / "w-not-ours.json").write_bytes(b"[]")
        assert store.collect().series[ROUTE].count == 3
        assert (tmp_path / "w-not-ours.json").exists(), "a name that is not a writer's is left alone"
        assert not (tmp_path / f"{_dead(4)}.json").exists()

    def test_a_child_forked_while_the_lock_is_held_can_take_it_later(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_dead(1), _snapshot(5).encode())
        child = multiprocessing.get_context("fork").Process(target=store.sweep)
        with store._locked(wait=True):  # as when the publisher thread sweeps at the moment a server forks
            child.start()
        child.join(30)
        assert child.exitcode == 0, "the child's copy of the descriptor did not keep the lock held"
        assert _worker_files(tmp_path) == []

    def test_a_background_sweep_skips_a_busy_lock_and_a_waiting_one_does_not(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_dead(1), _snapshot(5).encode())
        with store._locked(wait=True):  # another scrape or sweep is running
            assert store.sweep(wait=False) == 0
        assert _worker_files(tmp_path) == [f"{_dead(1)}.json"]
        assert store.sweep(wait=False) == 1

    def test_an_unreadable_retired_file_restarts_the_totals(self, tmp_path: Path) -> None:
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        store.write(_dead(1), _snapshot(5).encode())
        store.sweep()
        (tmp_path / "retired.json").write_bytes(b"garbage")
        store.write(_writer(current_identity()), _snapshot(2).encode())
        assert store.collect().series[ROUTE].count == 2


class TestRequestMetricsShared:
    def test_the_directory_comes_from_the_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
        metrics = RequestMetrics()
        try:
            assert metrics.multiprocess_dir == tmp_path
        finally:
            metrics.close()
        monkeypatch.delenv(METRICS_DIR_ENV)
        assert RequestMetrics().multiprocess_dir is None

    def test_the_thread_publishes_without_scrapes_and_close_retires(self, tmp_path: Path) -> None:
        metrics = RequestMetrics(multiprocess_dir=tmp_path, publish_interval=0.02)
        assert _worker_files(tmp_path) == [], "nothing counted, nothing written"
        metrics.started("GET")
        metrics.finished("GET", "/a", 200, 0.01)
        _wait_for(lambda: len(_worker_files(tmp_path)) == 1)
        metrics.started("GET")
        metrics.finished("GET", "/a", 200, 0.01)
        metrics.close()
        assert _worker_files(tmp_path) == []
        store = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS)
        assert store.collect().series["GET", "/a", "2xx"].count == 2
        metrics.close()  # idempotent
        assert store.collect().series["GET", "/a", "2xx"].count == 2

    def test_a_forked_child_counts_from_zero_under_its_own_name(self, tmp_path: Path) -> None:
        metrics = RequestMetrics(multiprocess_dir=tmp_path)
        for _ in range(3):
            metrics.started("GET")
            metrics.finished("GET", "/a", 200, 0.01)
        child = multiprocessing.get_context("fork").Process(target=_record_one_and_close, args=(metrics,))
        child.start()
        child.join()
        assert child.exitcode == 0
        assert _samples(metrics.render())[COUNT] == 4, "the parent's 3 are not counted again by the child"
        metrics.close()

    @pytest.mark.anyio
    async def test_the_middleware_serves_the_sum_of_all_writers(self, tmp_path: Path) -> None:
        SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS).write(_dead(1), _snapshot(5).encode())
        metrics = RequestMetrics(multiprocess_dir=tmp_path)
        app = Starlette(routes=[Route("/items/{id}", lambda request: PlainTextResponse("x"))])
        transport = httpx.ASGITransport(app=ObservabilityMiddleware(app, metrics=metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/items/1")).status_code == 200
            scraped = _samples((await client.get("/metrics")).text)
        metrics.close()
        assert scraped[COUNT] == 6

    def test_a_directory_cleared_under_a_running_writer_is_recreated(self, tmp_path: Path) -> None:
        directory = tmp_path / "metrics"
        metrics = RequestMetrics(multiprocess_dir=directory)
        metrics.started("GET")
        metrics.finished("GET", "/a", 200, 0.01)
        assert _samples(metrics.render())[COUNT] == 1
        shutil.rmtree(directory)
        metrics.started("GET")
        metrics.finished("GET", "/a", 200, 0.01)
        assert _samples(metrics.render())[COUNT] == 2
        metrics.close()

    @pytest.mark.parametrize("interval", [0.0, -1.0])
    def test_a_bad_interval_is_refused(self, tmp_path: Path, interval: float) -> None:
        with pytest.raises(ValueError, match="publish interval must be positive"):
            RequestMetrics(multiprocess_dir=tmp_path, publish_interval=interval)


def _record_one_and_close(metrics: RequestMetrics) -> None:
    assert metrics.series == {}
    metrics.started("GET")
    metrics.finished("GET", "/a", 200, 0.01)
    metrics.close()


class TestSpawnedWorkers:
    def test_workers_are_summed_and_a_killed_one_is_folded_exactly_once(self, tmp_path: Path) -> None:
        pipes = [SPAWN.Pipe(duplex=False) for _ in range(2)]
        readies = [SPAWN.Event(), SPAWN.Event()]
        workers = [
            SPAWN.Process(target=mp_workers.record, args=(str(tmp_path), requests, ready, stop))
            for requests, ready, (stop, _) in zip((7, 11), readies, pipes, strict=True)
        ]
        for worker in workers:
            worker.start()
        try:
            for ready in readies:
                assert ready.wait(60)
            scraper = RequestMetrics(multiprocess_dir=tmp_path)
            before = _samples(scraper.render())
            assert before[COUNT] == 18
            assert before[IN_FLIGHT] == 2

            os.kill(workers[0].pid or 0, signal.SIGKILL)  # not joined: a zombie until the sweep
            _wait_for(lambda: not workers[0].is_alive())
            start, results = SPAWN.Barrier(2), SPAWN.Queue()
            sweepers = [SPAWN.Process(target=mp_workers.sweep, args=(str(tmp_path), start, results)) for _ in "ab"]
            for sweeper in sweepers:
                sweeper.start()
            folded = [results.get(timeout=60) for _ in sweepers]
            for sweeper in sweepers:
                sweeper.join()
            assert sum(folded) <= 1, "at most one sweeper folded it (the live worker's thread sweeps too)"

            after = _samples(scraper.render())
            assert after[COUNT] == 18, "no count lost, none doubled"
            assert after[SUM] == pytest.approx(before[SUM])
            assert after[IN_FLIGHT] == 1, "the dead worker's in-flight request is dropped"
            assert len(_worker_files(tmp_path)) == 1

            pipes[1][1].send(None)
            workers[1].join(30)
            assert workers[1].exitcode == 0
            final = _samples(scraper.render())
            assert final[COUNT] == 18
            assert final[IN_FLIGHT] == 0
            assert _worker_files(tmp_path) == [], "a worker that closes hands its counts over at once"
            scraper.close()
        finally:
            for worker in workers:
                worker.kill()
                worker.join(30)

    def test_scrapes_never_go_backwards_while_workers_come_and_go(self, tmp_path: Path) -> None:
        scraper = RequestMetrics(multiprocess_dir=tmp_path)
        seen = [0.0]
        sent = 0
        for generation in range(4):
            ready, (stop, stopper) = SPAWN.Event(), SPAWN.Pipe(duplex=False)
            worker = SPAWN.Process(target=mp_workers.record, args=(str(tmp_path), 10 + generation, ready, stop))
            worker.start()
            sent += 10 + generation
            assert ready.wait(60)
            if generation % 2:
                os.kill(worker.pid or 0, signal.SIGKILL)
            else:
                stopper.send(None)
            while worker.is_alive():
                seen.append(_samples(scraper.render())[COUNT])
            worker.join()
            seen.append(_samples(scraper.render())[COUNT])
        scraper.close()
        assert seen == sorted(seen), "a counter never went down"
        assert seen[-1] == sent


def _server_command(server: str, port: int) -> list[str]:
    app, bind, quiet = (
        "tests.observability.mp_app:app",
        ["--host", "127.0.0.1", "--port", str(port)],
        ["--log-level", "warning"],
    )
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--workers", "2", *bind, *quiet, "--no-access-log"]
    granian = str(Path(sys.executable).with_name("granian"))
    respawn = ["--respawn-failed-workers", "--respawn-interval", "0.2"]
    return [granian, "--interface", "asgi", "--workers", "2", *respawn, *bind, *quiet, app]


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_real_server_with_two_workers_reports_every_request(tmp_path: Path, server: str) -> None:
    """Each scrape reaches one worker; it still reports both workers' requests, before and after a kill -9."""
    port = free_port()
    env = {**os.environ, METRICS_DIR_ENV: str(tmp_path), "PYTHONPATH": str(Path.cwd())}
    process = subprocess.Popen(_server_command(server, port), env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    # No keep-alive: each request opens a connection, so the kernel spreads them over both workers' accepts.
    client = httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=0), timeout=10)
    try:
        _wait_for(lambda: _answers(client), timeout=60)
        pids: dict[str, int] = {}
        sent = 0
        while len(pids) < 2 or sent < 100:
            pid = client.get("/pid").text
            pids[pid] = pids.get(pid, 0) + 1
            sent += 1
            assert sent < 5_000, f"the requests never reached both workers: {pids}"

        seen = _scrape_until(client, sent)
        victim = int(next(iter(pids)))
        os.kill(victim, signal.SIGKILL)
        # The surviving worker's publisher thread sweeps about once a second.
        _wait_for(lambda: not any(f"-{victim}-" in name for name in _worker_files(tmp_path)))
        for _ in range(20):
            seen.append(_samples(client.get("/metrics").text)[COUNT])
        assert set(seen[-20:]) == {sent}, "the killed worker's requests are still counted, once"
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    totals = SharedMetricsStore(tmp_path, buckets=DEFAULT_BUCKETS).collect()
    assert sum(t.count for t in totals.series.values()) == sent, "a graceful stop hands every count over"


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/metrics").status_code == 200
    except httpx.TransportError:
        return False


def _scrape_until(client: httpx.Client, sent: int) -> list[float]:
    """Scrape until the total reaches `sent` (each worker publishes within a second); totals must never drop."""
    seen: list[float] = []
    deadline = time.monotonic() + 20
    while not seen or seen[-1] != sent:
        assert time.monotonic() < deadline, f"the scrapes never showed all {sent} requests: {seen[-5:]}"
        seen.append(_samples(client.get("/metrics").text)[COUNT])
        assert seen == sorted(seen), "a counter went down"
        assert seen[-1] <= sent
        time.sleep(0.05)
    return seen
