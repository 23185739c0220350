"""Cache counters: plain integers and floats, incremented in place and readable in-process at any time."""

from __future__ import annotations

__all__ = ["CacheMetrics"]


class CacheMetrics:
    """What a `Cache` did since it was created (the observability layer exports these).

    Attributes:
        hits: Reads answered from a tier with a fresh value (negative-cached None and errors included).
        misses: Reads that found nothing usable and had to load (or, for `get`, returned the default).
        stale_served: Reads answered with a stale value (stale-while-revalidate or stale-if-error).
        coalesced_waits: Callers that waited for a load another caller had started (single-flight).
        loads: Loader calls started.
        load_errors: Loader calls that raised.
        load_seconds: Total time spent in loaders, in seconds (`load_seconds / loads` is the mean latency).
        load_seconds_max: The slowest loader call, in seconds.
        refreshes: Background refreshes started (stale-while-revalidate and early refresh).
        early_refreshes: Of those, refreshes started early, before the value went stale.
        corrupt: Entries dropped because they could not be decoded (corrupt, tampered or foreign).
        l2_errors: L2 calls that timed out or could not reach the tier (each one failed open).
        l2_outages: Outages: runs of failed L2 calls, each logged once.
        lease_waits: Loads not run here because another process held the key's lease and stored the value.
        lease_renewals: Times a slow load extended its Redis lease, so no other process took the load over.
        peer_invalidations: Invalidation messages received from other instances.

    """

    __slots__ = (
        "coalesced_waits",
        "corrupt",
        "early_refreshes",
        "hits",
        "l2_errors",
        "l2_outages",
        "lease_renewals",
        "lease_waits",
        "load_errors",
        "load_seconds",
        "load_seconds_max",
        "loads",
        "misses",
        "peer_invalidations",
        "refreshes",
        "stale_served",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.stale_served = 0
        self.coalesced_waits = 0
        self.loads = 0
        self.load_errors = 0
        self.load_seconds = 0.0
        self.load_seconds_max = 0.0
        self.refreshes = 0
        self.early_refreshes = 0
        self.corrupt = 0
        self.l2_errors = 0
        self.l2_outages = 0
        self.lease_waits = 0
        self.lease_renewals = 0
        self.peer_invalidations = 0

    def record_load(self, seconds: float, *, failed: bool) -> None:
        """Count one finished loader call."""
        self.load_seconds += seconds
        self.load_seconds_max = max(self.load_seconds_max, seconds)
        if failed:
            self.load_errors += 1

    def as_dict(self) -> dict[str, float]:
        """A snapshot of every counter, by name."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"CacheMetrics({self.as_dict()})"
