"""Background settlement of transfers: dispatch adapters and the worker loop."""
