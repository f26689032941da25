"""The request's edge: one pure-ASGI middleware that observes every HTTP request.

For each request it takes ``X-Request-ID`` (if well-formed) or makes one, returns it on the
response and puts it on every log record of the request (:data:`logging.request_id`); when
it is answered, it counts and times it by route template (:class:`~.metrics.Metrics`) and
logs one access line (method, route template, status, duration; never the body, query or
headers). One layer, one timer and one status capture serve all three: each layer around
the app costs every request a coroutine and a wrapped ``send``. The access line is only
queued here (a tuple, when Dompet's log writer is its only handler): a thread formats and
writes it (observability/log_writer.py).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dompet.observability.logging import ACCESS_LOGGER, access_line_writer, request_id
from dompet.observability.metrics import Metrics

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HEADER = b"x-request-id"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/saldo/{no_rekening}``), never the raw path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class RequestObserver:
    """Request id in and out, metrics and the access log line, for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger(ACCESS_LOGGER)
        # New ids: 32 hex digits, a random per-process half and a counter (unique, and
        # without a system call per request as uuid4 would make).
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == _HEADER:
                rid = value.decode("latin-1")
                break
        if not _VALID_ID.match(rid):
            rid = self._new_id()
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                headers.append((_HEADER, rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            method, route = scope["method"], route_template(scope)
            self.metrics.observe_request(method, route, status, seconds)
            write = access_line_writer(self.log)
            if write is not None:  # queued as it is, formatted and written by the log writer
                write(method, route, status, seconds, rid)
            elif self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
            request_id.reset(token)
