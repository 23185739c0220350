"""Hit ratio and hit cost of the memory tier's eviction policies: LRU against W-TinyLFU.

Run (from the repository root; cachetools, if installed in the same environment, joins as a peer):

    taskset -c 1 python benchmarks/cache_eviction.py

Traces are deterministic: 200,000 requests over 50,000 keys drawn from Zipf distributions (exponents 0.8 and 1.0;
key ranks shuffled), and a Zipf 0.9 trace with a one-off scan of 2,000 new keys every 10,000 requests. Each policy
sees the trace through the tier's synchronous API as the `Cache` uses it (`peek`, then `store` on a miss), at two
sizes (1% and 10% of the keys). Hit cost: µs per `@cache.cached` hit of one warm key, CPU time, median of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import importlib
import itertools
import random
import statistics
import time
from typing import Any

from overdrive.cache import Cache, EvictionPolicy, MemoryTier
from overdrive.cache._entry import Entry

POLICIES: tuple[EvictionPolicy, ...] = ("lru", "w-tinylfu")


def zipf_trace(requests: int, keys: int, exponent: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1 / rank**exponent for rank in range(1, keys + 1)))
    names = [f"key:{i}" for i in range(keys)]
    rng.shuffle(names)
    total = cumulative[-1]
    return [names[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(requests)]


def with_scans(trace: list[str], every: int, length: int) -> list[str]:
    out: list[str] = []
    scanned = 0
    for i, key in enumerate(trace, 1):
        out.append(key)
        if i % every == 0:
            out.extend(f"scan:{n}" for n in range(scanned, scanned + length))
            scanned += length
    return out


def hit_ratio(tier: MemoryTier, trace: list[str], entry: Entry) -> float:
    hits = 0
    peek, store = tier.peek, tier.store
    for key in trace:
        if peek(key) is None:
            store(key, entry)
        else:
            hits += 1
    return hits / len(trace)


def peer_hit_ratio(cache: Any, trace: list[str]) -> float:
    hits = 0
    for key in trace:
        if key in cache:
            _ = cache[key]
            hits += 1
        else:
            cache[key] = 1
    return hits / len(trace)


async def hit_cost(policy: EvictionPolicy, rounds: int, calls: int) -> float:
    cache = Cache(MemoryTier(10_000, policy=policy))

    @cache.cached(ttl=3600)
    async def value(x: int) -> int:
        return x + 1

    await value(1)
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            await value(1)
        samples.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    entry = Entry(value=b"v", fresh_until=1e12, expires_at=1e12)
    traces = {
        "Zipf 0.8": zipf_trace(200_000, 50_000, 0.8, 1),
        "Zipf 1.0": zipf_trace(200_000, 50_000, 1.0, 2),
        "Zipf 0.9 + scans": with_scans(zipf_trace(200_000, 50_000, 0.9, 3), 10_000, 2_000),
    }
    try:
        cachetools: Any = importlib.import_module("cachetools")
    except ModuleNotFoundError:
        cachetools = None
    header = "| trace | size | LRU | W-TinyLFU | W-TinyLFU - LRU |"
    if cachetools is not None:
        header += " cachetools LRUCache | cachetools LFUCache |"
    print(header)
    print("|---|---:|---:|---:|---:|" + ("---:|---:|" if cachetools is not None else ""))
    for name, trace in traces.items():
        for size in (500, 5_000):
            lru, tinylfu = (hit_ratio(MemoryTier(size, policy=p), trace, entry) for p in POLICIES)
            row = f"| {name} | {size:,} | {lru:.3f} | {tinylfu:.3f} | {tinylfu - lru:+.3f} |"
            if cachetools is not None:
                peers = (cachetools.LRUCache(maxsize=size), cachetools.LFUCache(maxsize=size))
                row += "".join(f" {peer_hit_ratio(peer, trace):.3f} |" for peer in peers)
            print(row)
    print()
    for policy in POLICIES:
        cost = asyncio.run(hit_cost(policy, args.rounds, args.calls))
        print(f"{policy}: {cost:.3f} µs CPU per @cache.cached hit (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
