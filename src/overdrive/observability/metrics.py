"""RED metrics for HTTP: request counts, a duration histogram and in-flight requests, kept in process.

Labels are bounded by construction: the method folds into a known set (else ``OTHER``), the route is the
framework's route *template* (``/products/{product_id}``, never the raw path; anything unmatched is one label,
``(unmatched)``, and routes past `max_routes` fold into ``(other)``), and the status into its class (``2xx``).
Recording is a dict lookup on a label tuple, a `bisect` into the bucket bounds and three increments: no lock
(everything runs on the event loop's thread) and no allocation once a series exists.

`render` writes the Prometheus text format (version 0.0.4), or OpenMetrics 1.0.0 text if asked; the bucket bounds
include 0.5 s, the latency threshold of the alert rules.

Exemplars: `exemplar` keeps, per series and bucket, the latest observation of a sampled trace (its trace id, value
and time); only the OpenMetrics text shows them. Nothing records one unless the middleware is given a trace id
getter (``exemplars=``), so `started` and `finished` cost the same either way.

With several worker processes, give each the same `multiprocess_dir` (or set ``OVERDRIVE_METRICS_DIR`` before the
server starts its workers): each worker then publishes a snapshot there about once a second, from a thread, and
`render` sums every worker's, dead ones included, so any worker can answer a scrape (see `multiprocess`). Recording
stays exactly as cheap.
"""

from __future__ import annotations

import os
import time
import weakref
from bisect import bisect_left
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

from overdrive.observability import _openmetrics
from overdrive.observability._openmetrics import EXEMPLAR_LABELS_MAX, escape
from overdrive.observability._snapshot import Exemplar, SeriesKey, SeriesTotals, Snapshot
from overdrive.observability.multiprocess import METRICS_DIR_ENV, SharedMetricsStore, SnapshotPublisher

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_BUCKETS", "OTHER_ROUTE", "UNMATCHED_ROUTE", "RequestMetrics"]

DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE: Final = "(unmatched)"
OTHER_ROUTE: Final = "(other)"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES: Final = {code: f"{code // 100}xx" for code in range(100, 600)}  # one lookup, no division
_TRACE_ID_MAX: Final = EXEMPLAR_LABELS_MAX - len("trace_id")


class _Series:
    """One label set's histogram: per-bucket counts (the last is +Inf), the sum and the count."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)
        self.total = 0.0

    @property
    def count(self) -> int:
        """Observations so far (summed when asked: one increment less per request)."""
        return sum(self.buckets)


class RequestMetrics:
    """The registry the metrics middleware records into; render it for Prometheus or read it in process.

    In multi-process mode a background thread publishes this process's counts, a forked child starts afresh
    (counts and publisher of its own), and `close` (also run at interpreter exit) publishes a last time and hands
    the counts to the retired totals. Clear the directory before a server starts if its counters should restart.

    Args:
        buckets: the duration histogram's upper bounds, in seconds.
        max_routes: route templates kept apart; later ones fold into ``(other)``.
        multiprocess_dir: a directory shared by all worker processes of one server; None reads
            ``$OVERDRIVE_METRICS_DIR`` and, if that is unset too, keeps metrics to this process.
        publish_interval: seconds between snapshots published to `multiprocess_dir`.

    """

    methods: ClassVar[frozenset[str]] = _METHODS
    """Method labels kept as they are; any other method counts as ``OTHER``."""
    status_classes: ClassVar[Mapping[int, str]] = _STATUS_CLASSES
    """Status code to its class label; codes outside 100-599 count as ``5xx``."""

    def __init__(
        self,
        *,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        max_routes: int = 500,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        publish_interval: float = 1.0,
    ) -> None:
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
            msg = f"Histogram buckets must be positive, distinct and increasing, not {buckets!r}."
            raise ValueError(msg)
        self.buckets = buckets
        self.max_routes = max_routes
        # Only `new_series` adds to this table and only `_forked` clears it: the compiled middleware remembers
        # series while the table keeps its size (and the process its fork count), so never remove entries.
        self.series: dict[SeriesKey, _Series] = {}
        self.exemplars: dict[SeriesKey, list[Exemplar | None]] = {}
        self.in_flight: dict[str, int] = {}
        self._routes: set[str] = set()
        directory = multiprocess_dir if multiprocess_dir is not None else os.environ.get(METRICS_DIR_ENV) or None
        self.multiprocess_dir = None if directory is None else Path(directory)
        self.publish_interval = publish_interval
        self._publisher: SnapshotPublisher | None = None
        if self.multiprocess_dir is not None:
            self._publish(SharedMetricsStore(self.multiprocess_dir, buckets=buckets))
            os.register_at_fork(after_in_child=partial(_start_afresh, weakref.ref(self)))

    def _publish(self, store: SharedMetricsStore) -> None:
        # No reference to self in `take`, so the registry can be collected while the thread runs.
        take = partial(_copy_counts, self.buckets, self.series, self.in_flight, self.exemplars)
        publisher = SnapshotPublisher(store, take, interval=self.publish_interval)
        weakref.finalize(self, publisher.close)
        publisher.start()
        self._publisher = publisher

    def _forked(self) -> None:
        """In a forked child: drop the parent's counts (the parent publishes those) and publish under a new name."""
        self.series.clear()
        self.exemplars.clear()
        self.in_flight.clear()
        self._routes.clear()
        if self._publisher is not None:
            self._publish(self._publisher.store)

    def snapshot(self) -> Snapshot:
        """A copy of this process's counts (safe to take from another thread)."""
        return _copy_counts(self.buckets, self.series, self.in_flight, self.exemplars)

    def close(self) -> None:
        """In multi-process mode: publish a last time and fold this process's counts into the retired totals."""
        if self._publisher is not None:
            self._publisher.close()

    def label_method(self, method: str) -> str:
        """The method as a bounded label value."""
        return method if method in self.methods else "OTHER"

    def started(self, method: str) -> str:
        """A request came in; returns its method as a label value, for `finished`.

        In-flight requests are counted per method: the route is only known after routing.
        """
        label = method if method in self.methods else "OTHER"
        self.in_flight[label] = self.in_flight.get(label, 0) + 1
        return label

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request ended: count it under its route template and status class, and time it."""
        self.in_flight[method] -= 1
        key = (method, route, self.status_classes.get(status, "5xx"))
        series = self.series.get(key)
        if series is None:
            series = self.new_series(key)
        series.buckets[bisect_left(self.buckets, seconds)] += 1
        series.total += seconds

    def exemplar(
        self, method: str, route: str, status: int, seconds: float, trace_id: str, *, timestamp: float | None = None
    ) -> None:
        """Keep `trace_id` as the exemplar of the bucket `seconds` falls in, on the series `finished` counted it under.

        Call it right after `finished`, with the same arguments, for a request whose trace is sampled; the latest
        exemplar of a bucket replaces the one before.

        Args:
            method: the bounded method label, as given to `finished`.
            route: the route template, as given to `finished` (a folded route lands on ``(other)`` as there).
            status: the response status code.
            seconds: the request's duration.
            trace_id: the trace's id, usually 32 hex digits.
            timestamp: when it was observed, in Unix seconds; now by default.

        Raises:
            ValueError: the trace id would make the exemplar's labels longer than OpenMetrics allows.

        """
        if len(trace_id) > _TRACE_ID_MAX:
            msg = f"An exemplar's trace id may have {_TRACE_ID_MAX} characters at most, not {len(trace_id)}."
            raise ValueError(msg)
        status_class = self.status_classes.get(status, "5xx")
        key = (method, route, status_class)
        if key not in self.series:
            key = (method, OTHER_ROUTE, status_class)
            if key not in self.series:
                return  # nothing counted under this label set: no bucket to stand for
        slots = self.exemplars.get(key)
        if slots is None:
            slots = self.exemplars[key] = [None] * (len(self.buckets) + 1)
        when = time.time() if timestamp is None else timestamp
        slots[bisect_left(self.buckets, seconds)] = Exemplar(trace_id, seconds, when)

    def new_series(self, key: tuple[str, str, str]) -> _Series:
        """The series to count a label set seen for the first time under (``(other)`` past `max_routes`)."""
        method, route, status = key
        if route not in self._routes:
            if len(self._routes) >= self.max_routes and route != UNMATCHED_ROUTE:
                other = (method, OTHER_ROUTE, status)
                existing = self.series.get(other)
                if existing is not None:
                    return existing  # not stored under `key`: the table stays bounded
                key = other
            else:
                self._routes.add(route)
        series = _Series(len(self.buckets))
        self.series[key] = series
        return series

    def render(self, prefix: str = "http_server", *, openmetrics: bool = False) -> str:
        """The registry as Prometheus text (0.0.4), or with `openmetrics` as OpenMetrics text with exemplars.

        In multi-process mode: all workers' sums, and each bucket's latest exemplar from any worker.
        """
        if self._publisher is None:
            snapshot = self.snapshot()
        else:
            self._publisher.publish()  # this worker's latest counts, so no worker's scrape sees less than the last one
            snapshot = self._publisher.store.collect()
        return _openmetrics.render(snapshot, prefix) if openmetrics else _render(snapshot, prefix)


def _start_afresh(ref: weakref.ReferenceType[RequestMetrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics._forked()


def _copy_counts(
    buckets: tuple[float, ...],
    series: dict[SeriesKey, _Series],
    in_flight: dict[str, int],
    exemplars: dict[SeriesKey, list[Exemplar | None]],
) -> Snapshot:
    # `list(...)` and `dict(...)` copy in one step under the GIL, so the event loop may record meanwhile.
    totals: dict[SeriesKey, SeriesTotals] = {}
    seen: set[int] = set()
    latest = dict(exemplars)
    for key, entry in list(series.items()):
        if id(entry) not in seen:  # a folded route shares the "(other)" series
            seen.add(id(entry))
            slots = latest.get(key)
            totals[key] = SeriesTotals(list(entry.buckets), entry.total, None if slots is None else list(slots))
    return Snapshot(buckets, dict(in_flight), totals)


def _render(snapshot: Snapshot, prefix: str) -> str:
    lines = [
        f"# HELP {prefix}_requests_in_flight HTTP requests being served.",
        f"# TYPE {prefix}_requests_in_flight gauge",
    ]
    lines += [f'{prefix}_requests_in_flight{{method="{m}"}} {n}' for m, n in sorted(snapshot.in_flight.items())]
    name = f"{prefix}_request_duration_seconds"
    lines += [
        f"# HELP {name} Time from request start to the end of the application's response.",
        f"# TYPE {name} histogram",
    ]
    bounds = [repr(bound) for bound in snapshot.buckets] + ["+Inf"]
    for (method, route, status), totals in sorted(snapshot.series.items()):
        labels = f'method="{method}",route="{escape(route)}",status="{status}"'
        cumulative = 0
        for le, count in zip(bounds, totals.counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
        lines.append(f"{name}_sum{{{labels}}} {totals.total!r}")
        lines.append(f"{name}_count{{{labels}}} {cumulative}")
    return "\n".join(lines) + "\n"
