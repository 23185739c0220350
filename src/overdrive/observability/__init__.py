"""`overdrive.observability`: RED metrics per route template, request IDs, Server-Timing and JSON logs off the loop.

Alert rules and a Grafana dashboard for those metrics are generated as data (`alert_rules`, `dashboard`) or written
by ``overdrive observability rules|dashboard``. `instrument_app` puts the standard stack on an app in one line.

Names load on first use (PEP 562), so importing one submodule (as the CLI does for the rules) does not pull in
structlog and the logging machinery; type checkers see ordinary imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overdrive._lazy import lazy_names

if TYPE_CHECKING:
    from overdrive.observability.access import AccessLog
    from overdrive.observability.context import merge_request_context, request_fields
    from overdrive.observability.dashboards import dashboard
    from overdrive.observability.instrument import instrument_app
    from overdrive.observability.logs import FlushLogsOnShutdown, StructuredLogs, configure_logging
    from overdrive.observability.metrics import RequestMetrics
    from overdrive.observability.middleware import ObservabilityMiddleware, route_template
    from overdrive.observability.multiprocess import METRICS_DIR_ENV, SharedMetricsStore
    from overdrive.observability.rules import alert_rules

__all__ = [
    "METRICS_DIR_ENV",
    "AccessLog",
    "FlushLogsOnShutdown",
    "ObservabilityMiddleware",
    "RequestMetrics",
    "SharedMetricsStore",
    "StructuredLogs",
    "alert_rules",
    "configure_logging",
    "dashboard",
    "instrument_app",
    "merge_request_context",
    "request_fields",
    "route_template",
]

_HOMES = {
    "METRICS_DIR_ENV": "overdrive.observability.multiprocess",
    "AccessLog": "overdrive.observability.access",
    "FlushLogsOnShutdown": "overdrive.observability.logs",
    "ObservabilityMiddleware": "overdrive.observability.middleware",
    "RequestMetrics": "overdrive.observability.metrics",
    "SharedMetricsStore": "overdrive.observability.multiprocess",
    "StructuredLogs": "overdrive.observability.logs",
    "alert_rules": "overdrive.observability.rules",
    "configure_logging": "overdrive.observability.logs",
    "dashboard": "overdrive.observability.dashboards",
    "instrument_app": "overdrive.observability.instrument",
    "merge_request_context": "overdrive.observability.context",
    "request_fields": "overdrive.observability.context",
    "route_template": "overdrive.observability.middleware",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
