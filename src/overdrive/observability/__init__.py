"""`overdrive.observability`: RED metrics per route template, request IDs and Server-Timing, at low cost.

Alert rules and a Grafana dashboard for those metrics are generated as data (`alert_rules`, `dashboard`) or written
by ``overdrive observability rules|dashboard``.
"""

from overdrive.observability.dashboards import dashboard
from overdrive.observability.metrics import RequestMetrics
from overdrive.observability.middleware import ObservabilityMiddleware, route_template
from overdrive.observability.multiprocess import METRICS_DIR_ENV, SharedMetricsStore
from overdrive.observability.rules import alert_rules

__all__ = [
    "METRICS_DIR_ENV",
    "ObservabilityMiddleware",
    "RequestMetrics",
    "SharedMetricsStore",
    "alert_rules",
    "dashboard",
    "route_template",
]
