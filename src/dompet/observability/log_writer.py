"""Log lines written off the request path: the caller queues, a thread scrubs, formats, writes.

:class:`LogWriter` is the one handler :func:`~.logging.configure_logging` puts on the root
logger. Its ``emit`` (in the caller's thread) settles only what must be read there (the
message's arguments, the exception's text; the request id is set by the handler's filter)
and queues the record. The access line of
:class:`~dompet.observability.edge.RequestObserver` is queued as a plain tuple
(:meth:`LogWriter.access`), without a ``LogRecord``, whenever this writer is the only
handler it would reach. A daemon thread wakes every :data:`WRITE_INTERVAL` seconds, scrubs
each record (:class:`~.scrub.ScrubFilter`; access lines by :func:`~.scrub.scrub_text`, the
same redaction), formats it (orjson) and writes the whole batch at once. Built, scrubbed,
formatted and written by the event loop, the access line had cost POST /pay about 60 µs of
CPU per request, a quarter of it over HTTP; now 2.6 µs, most of it in the thread
(BENCHMARKS.md, stop 19).

A line reaches the stream at most :data:`WRITE_INTERVAL` after it was logged; ``flush()``
(the app's shutdown, ``logging.shutdown`` at exit) writes what is queued at once. A stream
that cannot keep up does not grow the queue without end: past
:data:`MAX_QUEUED_ACCESS_LINES` access lines are dropped, and how many is logged.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from datetime import datetime, tzinfo
from typing import Any, TextIO

import orjson

from dompet.observability.scrub import ScrubFilter, scrub_text

WRITE_INTERVAL = 0.05
"""Seconds between two batches: the longest a line waits before it is written."""
MAX_QUEUED_ACCESS_LINES = 100_000
"""Access lines queued beyond this (a stalled stream) are dropped and counted."""
ACCESS_LOGGER = "dompet.access"

AccessLine = tuple[float, str, str, int, float, str]
"""(time.time(), method, route template, status, seconds, request id)."""

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
_EXCEPTIONS = logging.Formatter()


class LineFormat:
    """One line per record: JSON (orjson) or plain text, the time in ISO 8601 with the offset
    of ``tz`` (the display zone; the machine's zone when None), to the millisecond.

    JSON fields, in order: ``time``, ``level``, ``logger``, ``message``, ``exc_info`` and
    ``stack_info`` when there are any, then every ``extra`` field (``request_id`` among
    them). Text: ``time level logger [request_id] message``, then the traceback.
    """

    def __init__(self, *, json_lines: bool, tz: tzinfo | None) -> None:
        self.json_lines = json_lines
        self._tz = tz
        self._second = -1
        self._prefix = ""
        self._offset = ""

    def timestamp(self, created: float) -> str:
        """``2026-12-06T09:48:35.556+07:00`` (the second and its offset rendered once)."""
        second, millis = divmod(round(created * 1000), 1000)
        if second != self._second:
            moment = datetime.fromtimestamp(second, self._tz)
            if self._tz is None:
                moment = moment.astimezone()
            self._prefix = moment.strftime("%Y-%m-%dT%H:%M:%S")
            self._offset = moment.isoformat()[19:]
            self._second = second
        return f"{self._prefix}.{millis:03d}{self._offset}"

    def record(self, record: logging.LogRecord) -> str:
        """A prepared and scrubbed record: ``msg`` final, the exception as ``exc_text``."""
        when = self.timestamp(record.created)
        message = str(record.msg)
        if not self.json_lines:
            rid = record.__dict__.get("request_id")
            line = f"{when} {record.levelname} {record.name} [{rid}] {message}"
            for text in (record.exc_text, record.stack_info):
                if text:
                    line += "\n" + text
            return line + "\n"
        fields: dict[str, Any] = {
            "time": when,
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = record.stack_info
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                fields[key] = value
        return orjson.dumps(fields, default=str, option=_ORJSON).decode()

    def access_middle(self, message: str, method: str, route: str, status: int) -> str:
        """What an access line holds between its time and its duration (computed once per
        method, route and status): the level, the logger, the message and the request's
        method, route and status, as :meth:`record` writes them."""
        if not self.json_lines:
            return f" INFO {ACCESS_LOGGER} [{{rid}}] {message}"
        fields = {
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "message": message,
            "method": method,
            "route": route,
            "status": status,
        }
        return orjson.dumps(fields).decode()[1:-1]

    def access(self, created: float, middle: str, ms: float, rid: str) -> str:
        """An access line: what :meth:`record` writes for RequestObserver's record."""
        when = self.timestamp(created)
        if not self.json_lines:
            return when + middle.replace("{rid}", rid, 1) + "\n"
        rid_json = orjson.dumps(rid).decode()
        return f'{{"time":"{when}",{middle},"duration_ms":{ms!r},"request_id":{rid_json}}}\n'


class LogWriter(logging.Handler):
    """The root handler: queue in the caller's thread, scrub, format and write in a thread."""

    def __init__(self, stream: TextIO, line_format: LineFormat) -> None:
        super().__init__()
        self._stream = stream
        self._format = line_format
        self._scrub = ScrubFilter()
        self._queue: collections.deque[logging.LogRecord | AccessLine] = collections.deque()
        self._access_middles: dict[tuple[str, str, int], str] = {}
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self.dropped = 0
        self._dropped_reported = 0
        self._thread = threading.Thread(target=self._run, name="dompet-log-writer", daemon=True)
        self._thread.start()

    # -- the caller's side (the event loop) --------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.append(_prepare(record))
        except Exception:
            self.handleError(record)
            return
        if self._stopped.is_set():  # closed (at exit): no thread left to write it
            self._drain()

    def access(self, method: str, route: str, status: int, seconds: float, rid: str) -> None:
        """Queue one access line (RequestObserver's, when this writer is its only handler)."""
        if len(self._queue) < MAX_QUEUED_ACCESS_LINES:
            self._queue.append((time.time(), method, route, status, seconds, rid))
        else:
            self.dropped += 1

    # -- the writer's side ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped.wait(WRITE_INTERVAL):
            self._drain()

    def _drain(self) -> None:
        """Format and write everything queued so far, in one write."""
        with self._write_lock:
            queue = self._queue
            lines: list[str] = []
            for _ in range(len(queue)):
                item = queue.popleft()
                try:
                    lines.append(
                        self._access(item) if isinstance(item, tuple) else self._line(item)
                    )
                except Exception as exc:  # a value that cannot be formatted: say so instead
                    lines.append(self._line(_note(f"a log line could not be written: {exc!r}")))
            if self.dropped != self._dropped_reported:
                lines.append(self._line(self._dropped_record()))
            if not lines:
                return
            try:
                self._stream.write("".join(lines))
                self._stream.flush()
            except (OSError, ValueError):  # stream closed or gone: nothing left to tell
                pass

    def _line(self, record: logging.LogRecord) -> str:
        self._scrub.filter(record)
        return self._format.record(record)

    def _access(self, item: AccessLine) -> str:
        created, method, route, status, seconds, rid = item
        key = (method, route, status)
        middle = self._access_middles.get(key)
        if middle is None:  # the message, method and route as ScrubFilter leaves them
            message = scrub_text(f"{method} {route} {status}")
            middle = self._format.access_middle(
                message, scrub_text(method), scrub_text(route), status
            )
            self._access_middles[key] = middle
        return self._format.access(created, middle, round(seconds * 1000, 2), scrub_text(rid))

    def _dropped_record(self) -> logging.LogRecord:
        count = self.dropped - self._dropped_reported
        self._dropped_reported += count
        return _note(f"{count} access lines dropped: the log stream did not keep up")

    def flush(self) -> None:
        """Write what is queued now (in the caller's thread)."""
        self._drain()

    def close(self) -> None:
        """Stop the thread and write what is left; later records are written at once."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._drain()
        super().close()


def _prepare(record: logging.LogRecord) -> logging.LogRecord:
    """A copy with what must be read in the caller's thread settled: the message with its
    arguments (they may change later) and the exception's text (other handlers keep theirs)."""
    record = copy.copy(record)
    if record.args:
        record.msg = record.getMessage()
        record.args = None
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
        record.exc_info = None
    return record


def _note(message: str) -> logging.LogRecord:
    """A warning of the log writer's own."""
    return logging.LogRecord(
        "dompet.observability", logging.WARNING, __file__, 0, message, None, None
    )
