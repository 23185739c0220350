"""`overdrive.observability`: RED metrics per route template, request IDs, Server-Timing and JSON logs off the loop.

Alert rules and a Grafana dashboard for those metrics are generated as data (`alert_rules`, `dashboard`) or written
by ``overdrive observability rules|dashboard``. `instrument_app` puts the standard stack on an app in one line.
"""

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
