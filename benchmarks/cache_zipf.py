"""A Zipf request trace through each library's read-through decorator: loader calls, Redis commands, wall time.

Run (peers live only in a benchmark venv; the script starts its own redis-server pinned to core 0 and must itself
run on core 1):

    python3 -m venv /tmp/cz-venv && /tmp/cz-venv/bin/pip install -e . aiocache==0.12.3 cashews==7.6.0
    taskset -c 1 /tmp/cz-venv/bin/python benchmarks/cache_zipf.py --rounds 3

The trace: `--requests` keys drawn from a Zipf(`--s`) distribution over `--keys` keys with a fixed seed, so every
contender and every run sees the same sequence. `--workers` asyncio tasks pull the next key from the shared trace
and await the decorated function; its loader sleeps `--loader-ms` and counts itself. Each contender starts cold
(its Redis database flushed, a fresh cache object). Memory tiers that are the only tier hold every key; a memory
tier in front of Redis holds `--l1-fraction` of the keys, so L2 matters.

Reported per contender: loader calls against the trace's unique keys, Redis commands and GETs per request
(``INFO commandstats`` deltas on the private server), and wall time: medians over `--rounds` rounds, contenders
in an order rotated between rounds. Counts depend on machine noise only through Redis timeouts; wall times do.

Every Redis client gets a 50-connection pool. Time bounds are each library's default: overdrive's `RedisTier` fails
a call open after 100 ms, cashews after a 1 s socket timeout, aiocache never; one extra row runs overdrive with 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import platform
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from bench_redis import command_counts, delta, redis_server, server_version

from overdrive.cache import Cache, EvictionPolicy, MemoryTier, RedisTier

Call = Callable[[int], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]
LoaderFn = Callable[[int], Awaitable[dict[str, Any]]]
TTL = 3600


def zipf_trace(requests: int, keys: int, s: float, seed: int) -> list[int]:
    """`requests` key ids in 0..keys-1, key k drawn with weight 1/(k+1)**s; the same list for the same seed."""
    weights = [1 / (rank**s) for rank in range(1, keys + 1)]
    cumulative = list(itertools.accumulate(weights))
    return random.Random(seed).choices(range(keys), cum_weights=cumulative, k=requests)


class Loader:
    """The slow source behind every cache: sleeps, counts its calls, returns a small product record."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def __call__(self, key: int) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"id": key, "name": f"product {key}", "price": key / 100, "stock": key % 17}


@dataclass
class Built:
    """A contender ready to run: the decorated call, how to close it, and extra counters it can report."""

    call: Call
    close: Close
    notes: Callable[[], str] = field(default=lambda: "")


@dataclass(frozen=True, kw_only=True)
class Setup:
    """What every contender is built from."""

    url: str
    loader: LoaderFn
    all_keys: int
    l1_keys: int


# -- contenders ---------------------------------------------------------------------------------------------------


def overdrive_build(
    *, l1: bool, l2: bool, timeout: float | None = None, policy: EvictionPolicy = "lru"
) -> Callable[[Setup], Built]:
    def build(setup: Setup) -> Built:
        options = {"timeout": timeout} if timeout is not None else {}
        tier = RedisTier.from_url(setup.url, prefix="bench:", **options) if l2 else None
        memory = MemoryTier(setup.l1_keys if l2 else setup.all_keys, policy=policy) if l1 else None
        cache = Cache(memory, tier)
        loader = setup.loader

        @cache.cached(ttl=TTL, key="p:{key}", jitter=0)
        async def product(key: int) -> dict[str, Any]:
            return await loader(key)

        async def close() -> None:
            await cache.aclose()
            if tier is not None:
                await tier.aclose()

        def notes() -> str:
            m = cache.metrics
            return f"coalesced {m.coalesced_waits}, lease waits {m.lease_waits}, L2 errors {m.l2_errors}"

        return Built(product, close, notes)

    return build


def cashews_build(scheme: str, *, lock: bool = False, client_side: bool = False) -> Callable[[Setup], Built]:
    def build(setup: Setup) -> Built:
        import cashews  # noqa: PLC0415 -- peers live only in the benchmark venv
        from cashews.backends.memory import Memory  # noqa: PLC0415

        cache = cashews.Cache()
        if scheme == "mem":
            cache.setup(f"mem://?size={setup.all_keys + 1}")
        elif client_side:
            cache.setup(setup.url, max_connections=50, client_side=True, local_cache=Memory(size=setup.l1_keys))
        else:
            cache.setup(setup.url, max_connections=50)
        loader = setup.loader

        @cache(ttl=TTL, key="p:{key}", lock=lock)
        async def product(key: int) -> dict[str, Any]:
            return await loader(key)

        return Built(product, cache.close)

    return build


def aiocache_build(scheme: str, *, stampede: bool = False) -> Callable[[Setup], Built]:
    def build(setup: Setup) -> Built:
        import aiocache  # noqa: PLC0415 -- peers live only in the benchmark venv

        kwargs: dict[str, Any] = {"ttl": TTL, "key_builder": lambda _f, key: f"p:{key}"}
        if scheme == "redis":
            parsed = redis.connection.parse_url(setup.url)
            kwargs |= {
                "cache": aiocache.Cache.REDIS,
                "endpoint": parsed["host"],
                "port": parsed["port"],
                "db": parsed["db"],
                "pool_max_size": 50,
                "connection_pool_class": aioredis.BlockingConnectionPool,
            }
        decorator = aiocache.cached_stampede(lease=2, **kwargs) if stampede else aiocache.cached(**kwargs)
        loader = setup.loader

        @decorator
        async def product(key: int) -> dict[str, Any]:
            return await loader(key)

        async def close() -> None:
            await product.cache.close()  # type: ignore[attr-defined]

        return Built(product, close)

    return build


CONTENDERS: dict[str, Callable[[Setup], Built]] = {
    "overdrive L1 (memory)": overdrive_build(l1=True, l2=False),
    "overdrive L2 (Redis)": overdrive_build(l1=False, l2=True),
    "overdrive L1+L2": overdrive_build(l1=True, l2=True),
    "overdrive L1+L2, 1 s timeout": overdrive_build(l1=True, l2=True, timeout=1.0),
    "overdrive L1 W-TinyLFU + L2, 1 s timeout": overdrive_build(l1=True, l2=True, timeout=1.0, policy="w-tinylfu"),
    "cashews mem://": cashews_build("mem"),
    "cashews redis://": cashews_build("redis"),
    "cashews redis:// client_side": cashews_build("redis", client_side=True),
    "cashews redis:// lock=True": cashews_build("redis", lock=True),
    "aiocache memory": aiocache_build("memory"),
    "aiocache memory cached_stampede": aiocache_build("memory", stampede=True),
    "aiocache redis": aiocache_build("redis"),
    "aiocache redis cached_stampede": aiocache_build("redis", stampede=True),
}
ZIPF = [name for name in CONTENDERS if name != "aiocache memory cached_stampede"]


# -- running ---------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    seconds: float
    loads: int
    commands: int
    gets: int
    wrong: int
    errors: int
    finished: int
    notes: str


async def drive(call: Call, trace: list[int], workers: int, limit: float) -> tuple[int, int, int]:
    """Issue the trace from `workers` tasks; returns (requests finished, wrong values, errors) within `limit` s."""
    keys = iter(trace)
    finished = wrong = errors = 0

    async def worker() -> None:
        nonlocal finished, wrong, errors
        for key in keys:
            try:
                value = await call(key)
            except Exception:  # noqa: BLE001 -- a failed request is counted, the run goes on
                errors += 1
            else:
                wrong += value["id"] != key
            finished += 1

    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*(worker() for _ in range(workers)))
    except TimeoutError:
        pass
    return finished, wrong, errors


async def run_one(name: str, trace: list[int], args: argparse.Namespace, url: str) -> Result:
    probe = redis.Redis.from_url(url)
    probe.flushdb()
    loader = Loader(args.loader_ms / 1000)
    setup = Setup(url=url, loader=loader, all_keys=args.keys, l1_keys=max(1, int(args.keys * args.l1_fraction)))
    built = CONTENDERS[name](setup)
    before = command_counts(probe)
    start = time.perf_counter()
    finished, wrong, errors = await drive(built.call, trace, args.workers, args.limit)
    seconds = time.perf_counter() - start
    notes = built.notes()
    try:
        async with asyncio.timeout(30):
            await built.close()
    except (TimeoutError, asyncio.CancelledError) as exc:  # a peer failing to close must not end the whole run
        notes += f" close failed: {exc!r}"
    await asyncio.sleep(0.05)  # let background writes (aiocache, cashews) land before the stats are read
    used = delta(command_counts(probe), before)
    probe.close()
    return Result(seconds, loader.calls, used.total(), used["get"], wrong, errors, finished, notes)


def fmt_range(values: list[float], spec: str) -> str:
    low, high = min(values), max(values)
    return format(low, spec) if low == high else f"{format(low, spec)}-{format(high, spec)}"


def report(results: dict[str, list[Result]], trace: list[int], args: argparse.Namespace, redis_version: str) -> None:
    unique = len(set(trace))
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}" for p in ("overdrive", "cashews", "aiocache", "redis", "msgspec")
    )
    print(f"Python {platform.python_version()}, Redis server {redis_version}, {versions}")
    print(
        f"Trace: {len(trace):,} requests over {args.keys:,} keys, Zipf s={args.s}, seed {args.seed}: {unique:,} unique "
        f"keys; {args.workers} workers, loader {args.loader_ms} ms, L1 in front of Redis holds "
        f"{int(args.keys * args.l1_fraction):,} keys; {args.rounds} rounds"
    )
    print(
        "\n| contender | loader calls | x unique keys | Redis cmds / request | GETs / request | "
        "wall s (median) | min-max | x overdrive L1+L2 (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    reference = results.get("overdrive L1+L2")
    for name, runs in results.items():
        loads = [r.loads for r in runs]
        per_req = [r.commands / r.finished for r in runs]
        gets = [r.gets / r.finished for r in runs]
        secs = [r.seconds for r in runs]
        ratio = "-"
        if reference is not None:
            ratio = f"{statistics.median(r.seconds / ref.seconds for r, ref in zip(runs, reference, strict=True)):.2f}"
        incomplete = "" if all(r.finished == len(trace) for r in runs) else " (timed out)"
        print(
            f"| {name}{incomplete} | {statistics.median(loads):,.0f} | {statistics.median(loads) / unique:.3f} | "
            f"{statistics.median(per_req):.2f} | {statistics.median(gets):.3f} | {statistics.median(secs):.2f} | "
            f"{fmt_range(secs, '.2f')} | {ratio} |"
        )
    print("\nPer run (loader calls / Redis commands / wrong values / errors / finished / notes):")
    for name, runs in results.items():
        for run in runs:
            print(
                f"  {name}: {run.loads} / {run.commands} / {run.wrong} / {run.errors} / {run.finished} / "
                f"{run.seconds:.2f} s {run.notes}"
            )


async def main(args: argparse.Namespace) -> None:
    names = [n for n in ZIPF if not args.only or n in args.only or any(part in n for part in args.only)]
    if args.only and all(part in ZIPF for part in args.only):
        names = [n for n in ZIPF if n in args.only]
    trace = zipf_trace(args.requests, args.keys, args.s, args.seed)
    results: dict[str, list[Result]] = {name: [] for name in names}
    with redis_server(core=args.redis_core) as url:
        with redis.Redis.from_url(url) as probe:
            version = server_version(probe)
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                result = await run_one(name, trace, args, url)
                results[name].append(result)
                print(f"round {round_no + 1} {name}: {result}", flush=True)
    report(results, trace, args, version)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--s", type=float, default=1.0, help="Zipf exponent")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--loader-ms", type=float, default=10.0)
    parser.add_argument("--l1-fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds before a contender's run is cut off")
    parser.add_argument("--redis-core", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run the contenders whose names contain any of these")
    asyncio.run(main(parser.parse_args()))
