"""Secrets never reach a log line: pins, passwords, tokens and Authorization values redacted.

:class:`ScrubFilter` redacts the message, its arguments, any ``extra`` field (by its name, at
any depth) and the exception text of a record; :func:`scrub_text` does the text part. The log
writer applies both (observability/log_writer.py), to records and to access lines alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

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
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def scrub_text(text: str) -> str:
    """The text with bearer tokens and ``key: value`` secrets replaced by [REDACTED]."""
    if ":" not in text and "=" not in text and "bearer" not in text.lower():
        return text  # neither pattern can match (3 µs of regex saved on a request id)
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
