"""The OpenAI-compatible HTTP front door (and ``/metrics``) on ``Settings.http_port``."""
