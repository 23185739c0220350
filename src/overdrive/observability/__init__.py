"""`overdrive.observability`: RED metrics per route template, request IDs and Server-Timing, at low cost."""

from overdrive.observability.metrics import RequestMetrics
from overdrive.observability.middleware import ObservabilityMiddleware, route_template

__all__ = ["ObservabilityMiddleware", "RequestMetrics", "route_template"]
