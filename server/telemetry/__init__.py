"""Metrics (Prometheus) and tracing (OpenTelemetry), fed through ``server.observe``."""
