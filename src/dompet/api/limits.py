"""Request limits: a pure-ASGI middleware that refuses request bodies over a size limit.

A declared ``Content-Length`` over the limit is refused before the app sees the request; a
body streamed without one (chunked) is counted as it arrives and refused as soon as it passes
the limit. Either way the answer is 413 ``{"message"}`` on the e-wallet API and 400
``{"remark"}`` on the savings API (the API's own error shape, via api/errors.py).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dompet.api.errors import error_response
from dompet.api.routing import shape_of_path

STATUS = 413


def too_large_message(limit: int) -> str:
    return f"Request body is too large (at most {limit} bytes)"


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` (never buffers more than that)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            shape = shape_of_path(scope["path"])
            response = error_response(shape, STATUS, too_large_message(self.max_bytes))
            await response(scope, receive, send)
            return

        received = 0
        limit = self.max_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises an HTTPException met while reading the body, so the
                    # app's one error mapper answers it in the right API's shape.
                    raise HTTPException(STATUS, too_large_message(limit))
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length (the server has checked it is a number), if any."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # counted as it streams in instead
    return None
