"""The OpenAI-compatible HTTP front door on ``Settings.http_port`` (``/metrics`` is not here:
see ``server.telemetry.scrape``)."""
