"""`overdrive load` and `overdrive compare`: a fast load generator with true latency, and a regression gate."""

from overdrive.loadtest.histogram import Histogram, TimeSeries

__all__ = ["Histogram", "TimeSeries"]
