"""The turn path: one Converse (or HTTP chat completion) turn, read top to bottom here.

``runner`` (what every edge does around a turn) -> ``engine`` (route plan, first-token race,
streaming, failover) -> the router and the provider adapters; ``observer`` is how turns and
attempts report to metrics and tracing; ``probe_runner`` sends the router's probes.
"""
