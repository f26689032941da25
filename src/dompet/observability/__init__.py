"""Metrics (Prometheus) and structured logs. Nothing here is created at import time."""
