"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers, then its body, as two
``transport.write`` calls. With TCP_NODELAY on (asyncio sets it) each goes out at once: two
``send`` system calls and two TCP segments per response, and a client that wakes up for the
headers and again for the body. :class:`OneWritePerTurn` gathers what is written during one turn
of the event loop and writes it once at the end of the turn. Nothing waits longer than that turn
(no Nagle-like timer), and the order of bytes is unchanged. Measured on GET /transactions pages
with 2 workers at 64 connections: about 12 % more pages per second (docs/serving.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWritePerTurn:
    """A transport whose writes made during one event-loop turn reach the socket as one.

    Everything but writing, closing and aborting is the wrapped transport's own.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Write what is pending now (called at the end of the turn, and before closing)."""
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` HTTP/1.1 protocol on a :class:`OneWritePerTurn` transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(OneWritePerTurn(transport, self.loop))  # type: ignore[arg-type]
