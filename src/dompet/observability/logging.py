"""Structured logs: JSON lines (python-json-logger) carrying the request id, secrets scrubbed.

:class:`~dompet.observability.edge.RequestObserver` sets :data:`request_id` for each request and
logs one access line per request (method, route template, status, duration; never the body,
query or headers) on :data:`ACCESS_LOGGER`; :class:`RequestIdFilter` puts the id on every record.
:class:`ScrubFilter` redacts pins, passwords, tokens and Authorization values from every record.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("dompet_request_id", default=None)

SECRET_KEYS = re.compile(
    r"pin|password|passwd|secret|token|authorization|cookie|pepper", re.IGNORECASE
)
REDACTED = "[REDACTED]"
_SECRET_IN_TEXT = re.compile(
    r"""(?ix)
    (bearer\s+)[A-Za-z0-9._~+/=-]+                                   # Authorization: Bearer x
    | (["']?(?:pin|password|passwd|secret|[a-z_]*token|authorization|pepper)["']?
       \s*[:=]\s*["']?)(?:bearer\s+)?[^"',\s}]+                      # "pin": "123456", token=x
    """
)
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*\]")
"""SQLAlchemy puts a statement's bound values (pin hashes ...) into its error messages."""
ACCESS_LOGGER = "dompet.access"
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def scrub_text(text: str) -> str:
    """The text with bearer tokens and ``key: value`` secrets replaced by [REDACTED]."""
    return _SECRET_IN_TEXT.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


def _scrub_value(key: str, value: Any) -> Any:
    if SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, str):
        return scrub_text(value)
    return value


class ScrubFilter(logging.Filter):
    """Redact secrets from the message, its arguments and any ``extra`` field."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = scrub_text(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = _SQL_PARAMETERS.sub("[parameters: [REDACTED]]", record.exc_text)
            record.exc_text = scrub_text(text)
            record.exc_info = None  # formatters must use the scrubbed exc_text
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate
        for key in list(record.__dict__):
            if key not in _RESERVED:
                record.__dict__[key] = _scrub_value(key, record.__dict__[key])
        return True


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (``request_id``, null outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send every log record (uvicorn's included) to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(ScrubFilter())
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_dompet", False):
            root.removeHandler(old)
    handler._dompet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # dompet.access replaces uvicorn's access log (which shows raw paths and client addresses).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
