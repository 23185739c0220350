"""`overdrive load` and `overdrive compare`: a fast load generator with true latency, and a regression gate."""

__all__: list[str] = []
