"""Metrics (Prometheus) and tracing (OpenTelemetry), fed through ``server.turns.observer``."""
