"""The log writer: lines queued by the caller, scrubbed, formatted and written by its thread.

The access line's fast path (a tuple, no LogRecord) must write what the record would have:
same fields, same redaction. pytest keeps handlers of its own on the root logger, which turns
the fast path off (as any other handler would); these tests leave the writer alone there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dompet.observability import log_writer
from dompet.observability.log_writer import LineFormat, LogWriter
from dompet.observability.logging import (
    ACCESS_LOGGER,
    RequestIdFilter,
    access_line_writer,
    request_id,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
BOUND = 10.0
"""Upper bound of every wait for the writer's thread (a loop limit, not a timing assertion)."""


class Stream:
    """A text stream that remembers what was written, and by which thread."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.threads: set[str] = set()
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    def write(self, text: str) -> int:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(BOUND)
        self.threads.add(threading.current_thread().name)
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return "".join(self.parts).splitlines()


@pytest.fixture
def stream() -> Stream:
    return Stream()


@pytest.fixture
def writer(stream: Stream) -> Iterator[LogWriter]:
    made = LogWriter(stream, LineFormat(json_lines=True, tz=JAKARTA))  # type: ignore[arg-type]
    made.addFilter(RequestIdFilter())
    try:
        yield made
    finally:
        made.close()


@contextlib.contextmanager
def alone_on_root(writer: LogWriter) -> Iterator[None]:
    """The writer as the root logger's only handler, at INFO, as configure_logging leaves it
    (inside the test: pytest adds its own handlers around each test's call)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = [writer]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_access_line_skips_logging_and_writes_what_the_record_would(
    writer: LogWriter, stream: Stream
) -> None:
    with alone_on_root(writer):
        access = logging.getLogger(ACCESS_LOGGER)
        write = access_line_writer(access)
        assert write == writer.access
        # A request id the client chose can look like a secret: both paths redact it.
        rid = "token:abc.def"
        write("POST", "/pay", 200, 0.00123, rid)
        token = request_id.set(rid)
        try:
            access.info(
                "%s %s %s",
                "POST",
                "/pay",
                200,
                extra={"method": "POST", "route": "/pay", "status": 200, "duration_ms": 1.23},
            )
        finally:
            request_id.reset(token)
        writer.flush()
        fast, slow = (json.loads(line) for line in stream.lines())
        assert fast["request_id"] == "token:[REDACTED]"
        assert "abc.def" not in "".join(stream.parts)
        assert list(fast) == list(slow)
        assert {**fast, "time": None} == {**slow, "time": None}
        assert fast == {
            "time": fast["time"],
            "level": "INFO",
            "logger": "dompet.access",
            "message": "POST /pay 200",
            "method": "POST",
            "route": "/pay",
            "status": 200,
            "duration_ms": 1.23,
            "request_id": "token:[REDACTED]",
        }


def test_the_fast_path_steps_aside_for_any_other_handler_or_level(writer: LogWriter) -> None:
    with alone_on_root(writer):
        access = logging.getLogger(ACCESS_LOGGER)
        root = logging.getLogger()
        assert access_line_writer(access) is not None
        other = logging.NullHandler()
        for logger in (root, logging.getLogger("dompet"), access):
            logger.addHandler(other)
            try:
                assert access_line_writer(access) is None, logger.name
            finally:
                logger.removeHandler(other)
        root.setLevel(logging.WARNING)
        assert access_line_writer(access) is None
        root.setLevel(logging.INFO)
        access.propagate = False
        try:
            assert access_line_writer(access) is None
        finally:
            access.propagate = True
        assert access_line_writer(access) is not None


def test_lines_are_written_by_the_writer_thread_not_the_caller(
    writer: LogWriter, stream: Stream
) -> None:
    with alone_on_root(writer):
        logging.getLogger("dompet.test").warning("written %s", "later")
        assert stream.parts == []  # queued: the caller did not write
        deadline = time.monotonic() + BOUND
        while not stream.parts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(stream.lines()[0])["message"] == "written later"
        assert stream.threads == {"dompet-log-writer"}


def test_records_are_settled_when_logged_and_scrubbed_when_written(
    writer: LogWriter, stream: Stream
) -> None:
    with alone_on_root(writer):
        args = ["before"]
        logging.getLogger("dompet.test").info(
            "args %s, pin=%s", args, "123456", extra={"refresh_token": "zzz", "n": 1}
        )
        args[0] = "after"  # changed once logged: the line keeps what was logged
        try:
            raise ValueError("Bearer abc.def.ghi")
        except ValueError:
            logging.getLogger("dompet.test").exception("failed")
        writer.flush()
        first, second = (json.loads(line) for line in stream.lines())
        assert first["message"] == "args ['before'], pin=[REDACTED]"
        assert first["refresh_token"] == "[REDACTED]"
        assert first["n"] == 1
        assert "ValueError: Bearer [REDACTED]" in second["exc_info"]
        assert "abc.def.ghi" not in "".join(stream.parts)


def test_times_are_iso_8601_with_the_offset_of_the_display_zone() -> None:
    created = datetime(2026, 12, 6, 2, 48, 35, 556000, tzinfo=ZoneInfo("UTC")).timestamp()
    record = logging.makeLogRecord({"msg": "hello", "created": created, "levelname": "INFO"})
    as_json = json.loads(LineFormat(json_lines=True, tz=JAKARTA).record(record))
    assert as_json["time"] == "2026-12-06T09:48:35.556+07:00"
    moment = datetime.fromisoformat(as_json["time"])
    assert moment.utcoffset() == timedelta(hours=7)
    assert moment.timestamp() == pytest.approx(created)
    text = LineFormat(json_lines=False, tz=JAKARTA).record(record)
    assert text.startswith("2026-12-06T09:48:35.556+07:00 INFO ")
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    paris = LineFormat(json_lines=True, tz=ZoneInfo("Europe/Paris"))
    assert paris.timestamp(summer) == "2026-07-01T14:00:00.000+02:00"
    assert paris.timestamp(created) == "2026-12-06T03:48:35.556+01:00"


def test_a_stalled_stream_drops_access_lines_and_says_how_many(
    writer: LogWriter, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with alone_on_root(writer):
        monkeypatch.setattr(log_writer, "MAX_QUEUED_ACCESS_LINES", 3)
        stream.gate = threading.Event()
        logging.getLogger("dompet.test").warning("first")
        assert stream.entered.wait(BOUND)  # the writer's thread is stuck in write()
        for n in range(10):
            writer.access("GET", "/healthz", 200, 0.001, f"r{n}")
        stream.gate.set()
        writer.flush()
        lines = [json.loads(line) for line in stream.lines()]
        assert [line.get("request_id") for line in lines[1:4]] == ["r0", "r1", "r2"]
        assert lines[4]["message"] == "7 access lines dropped: the log stream did not keep up"
        assert lines[4]["level"] == "WARNING"
        assert len(lines) == 5


def test_closing_writes_what_is_left_and_later_records_at_once(
    writer: LogWriter, stream: Stream
) -> None:
    with alone_on_root(writer):
        writer.access("GET", "/healthz", 200, 0.001, "r1")
        writer.close()
        assert [json.loads(line)["request_id"] for line in stream.lines()] == ["r1"]
        logging.getLogger("dompet.test").warning("after close")
        assert json.loads(stream.lines()[-1])["message"] == "after close"


def test_plain_text_access_lines_match_the_record_path_too(stream: Stream) -> None:
    """LOG_JSON=0: the fast path writes the line the record path writes (time aside)."""
    writer = LogWriter(stream, LineFormat(json_lines=False, tz=JAKARTA))  # type: ignore[arg-type]
    writer.addFilter(RequestIdFilter())
    try:
        with alone_on_root(writer):
            access = logging.getLogger(ACCESS_LOGGER)
            write = access_line_writer(access)
            assert write is not None
            write("GET", "/saldo/{no_rekening}", 400, 0.002, "pin=1234")
            token = request_id.set("pin=1234")
            try:
                access.info("%s %s %s", "GET", "/saldo/{no_rekening}", 400)
            finally:
                request_id.reset(token)
            writer.flush()
    finally:
        writer.close()
    fast, slow = (line.split(" ", 1) for line in stream.lines())
    assert fast[1] == slow[1] == "INFO dompet.access [pin=[REDACTED]] GET /saldo/{no_rekening} 400"
    assert datetime.fromisoformat(fast[0]).utcoffset() == timedelta(hours=7)
