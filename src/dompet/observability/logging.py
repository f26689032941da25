"""Structured logs: JSON lines carrying the request id, secrets scrubbed, written off the
request path.

:class:`~dompet.observability.edge.RequestObserver` sets :data:`request_id` for each request and
logs one access line per request (method, route template, status, duration; never the body,
query or headers) on :data:`ACCESS_LOGGER`; :class:`RequestIdFilter` puts the id on every record.
Secrets are redacted from every line (:mod:`.scrub`). :func:`configure_logging` sends every
record to one :class:`~.log_writer.LogWriter` on the root logger: the caller only queues, a
thread scrubs, formats (orjson) and writes; :func:`access_line_writer` lets the access line
skip the ``logging`` machinery when that writer is all it would reach.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import tzinfo

from dompet.observability.log_writer import ACCESS_LOGGER, LineFormat, LogWriter

__all__ = [
    "ACCESS_LOGGER",
    "RequestIdFilter",
    "access_line_writer",
    "configure_logging",
    "flush_logs",
    "request_id",
]

request_id: ContextVar[str | None] = ContextVar("dompet_request_id", default=None)

AccessWrite = Callable[[str, str, int, float, str], None]
"""(method, route template, status, seconds, request id) -> None."""


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (``request_id``, null outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(
    level: str = "INFO", json_lines: bool = True, tz: tzinfo | None = None
) -> None:
    """Send every log record (uvicorn's included) to stderr, as JSON lines or plain text, with
    times in ``tz`` (the display zone) as ISO 8601 with the offset. Replaces (and flushes) the
    writer of an earlier call."""
    writer = LogWriter(sys.stderr, LineFormat(json_lines=json_lines, tz=tz))
    writer.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_dompet", False):
            root.removeHandler(old)
            old.close()
    writer._dompet = True  # type: ignore[attr-defined]
    root.addHandler(writer)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # dompet.access replaces uvicorn's access log (which shows raw paths and client addresses).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def access_line_writer(logger: logging.Logger) -> AccessWrite | None:
    """The log writer's :meth:`~LogWriter.access` when an INFO record of ``logger`` would reach
    that writer and nothing else (no other handler or filter on the way); None otherwise, and
    then the access line is logged as a record."""
    if logger.filters or not logger.isEnabledFor(logging.INFO):
        return None
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    writer = handlers[0]
    if type(writer) is not LogWriter or writer.level > logging.INFO:
        return None
    return writer.access


def flush_logs() -> None:
    """Write every queued line now (the app's shutdown: nothing is lost at exit)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogWriter):
            handler.flush()
