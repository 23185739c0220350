"""Metric names Overdrive exports, in one place for alert rules, dashboards and the exporters themselves.

The HTTP names are what `RequestMetrics.render` writes (with its default ``http_server`` prefix). The cache,
database and job names are the contract for those modules' exporters: they export exactly these names, with the
labels listed here, so the dashboard's rows need no change when the exporters land. Import them; never respell them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CACHE_HITS",
    "CACHE_LOADS",
    "CACHE_LOAD_ERRORS",
    "CACHE_LOAD_SECONDS",
    "CACHE_MISSES",
    "CACHE_STALE_SERVED",
    "DB_QUERY_DURATION",
    "HTTP_REQUESTS_IN_FLIGHT",
    "HTTP_REQUEST_DURATION",
    "JOBS_QUEUE_DEPTH",
    "SERVER_ERROR_STATUS",
]

# HTTP (overdrive.observability.metrics). Histogram labels: method, route (template), status (class: 2xx..5xx).
HTTP_REQUEST_DURATION: Final = "http_server_request_duration_seconds"
# Gauge, label: method.
HTTP_REQUESTS_IN_FLIGHT: Final = "http_server_requests_in_flight"
# The status label value that counts against the availability SLO.
SERVER_ERROR_STATUS: Final = "5xx"

# Cache (overdrive.cache.metrics.CacheMetrics): one counter per attribute, label `cache` (the cache's name).
CACHE_HITS: Final = "overdrive_cache_hits_total"
CACHE_MISSES: Final = "overdrive_cache_misses_total"
CACHE_STALE_SERVED: Final = "overdrive_cache_stale_served_total"
CACHE_LOADS: Final = "overdrive_cache_loads_total"
CACHE_LOAD_ERRORS: Final = "overdrive_cache_load_errors_total"
CACHE_LOAD_SECONDS: Final = "overdrive_cache_load_seconds_total"

# Database (overdrive.db): a histogram of statement time (…_bucket, …_sum, …_count), label `route` (the route
# template of the request that ran it, "(none)" outside a request).
DB_QUERY_DURATION: Final = "overdrive_db_query_duration_seconds"

# Jobs (overdrive.jobs): a gauge of jobs waiting to run, label `queue`.
JOBS_QUEUE_DEPTH: Final = "overdrive_jobs_queue_depth"
