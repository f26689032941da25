"""One socket write per response (dompet.serving_http), on real sockets and a real uvicorn.

The writes are counted on asyncio's own socket transport (its ``write`` wrapped to count, then
called as it is): with ``OneWriteHttpToolsProtocol`` a response is one write; with uvicorn's
protocol it is two, which is what the change is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dompet.serving_http import OneWriteHttpToolsProtocol, OneWritePerTurn
from tests.support.servers import find_free_port

HOST = "127.0.0.1"
BIG = b"x" * (2 * 1024 * 1024)


async def _json(request: Request) -> Response:
    return JSONResponse({"path": request.url.path})


async def _big(request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


async def _stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(3):
            await asyncio.sleep(0.01)  # real turns of the loop between the parts
            yield f"part{n};".encode()

    return StreamingResponse(parts(), media_type="text/plain")


APP = Starlette(routes=[Route("/json", _json), Route("/big", _big), Route("/stream", _stream)])


@pytest.fixture
def socket_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write asyncio's socket transports receive, in order (the writes still happen)."""
    from asyncio import selector_events

    transport_class: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009
    seen: list[bytes] = []
    write = transport_class.write

    def counting(self: Any, data: bytes) -> None:
        seen.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(transport_class, "write", counting)
    return seen


@contextlib.asynccontextmanager
async def _server(http: Any) -> AsyncIterator[int]:
    port = find_free_port()
    config = uvicorn.Config(
        APP, host=HOST, port=port, http=http, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # a bound on the wait, not a timing assertion
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, requests: list[bytes], close: bool = False) -> bytes:
    """Send ``requests`` one after the other on one connection; what came back."""
    reader, writer = await asyncio.open_connection(HOST, port)
    received = b""
    for request in requests:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        received += head
        length = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ]
        if length:
            received += await reader.readexactly(length[0])
        else:  # chunked: up to the last chunk
            received += await reader.readuntil(b"0\r\n\r\n")
    if close:
        received += await reader.read()  # until the server closes
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return received


def _get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", f"Host: {HOST}", *extra, "", ""]).encode()


async def test_each_response_is_one_socket_write(socket_writes: list[bytes]) -> None:
    async with _server(OneWriteHttpToolsProtocol) as port:
        socket_writes.clear()
        received = await _exchange(port, [_get("/json"), _get("/json"), _get("/json")])
    assert received.count(b'{"path":"/json"}') == 3
    server_writes = [w for w in socket_writes if w.startswith(b"HTTP/1.1")]
    assert len(server_writes) == 3, server_writes
    assert all(w.endswith(b'{"path":"/json"}') for w in server_writes)


async def test_uvicorns_own_protocol_writes_twice(socket_writes: list[bytes]) -> None:
    """The baseline the change removes (and proof the counting sees the difference)."""
    async with _server("httptools") as port:
        socket_writes.clear()
        await _exchange(port, [_get("/json")])
    responses = [w for w in socket_writes if not w.startswith(b"GET ")]
    assert len(responses) == 2
    assert responses[0].startswith(b"HTTP/1.1 200")
    assert responses[1] == b'{"path":"/json"}'


async def test_large_streamed_and_closing_responses_arrive_whole() -> None:
    async with _server(OneWriteHttpToolsProtocol) as port:
        big = await _exchange(port, [_get("/big")])
        assert big.endswith(BIG)
        assert f"content-length: {len(BIG)}".encode() in big
        stream = await _exchange(port, [_get("/stream")])
        assert stream.split(b"\r\n\r\n", 1)[1] == (
            b"6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n"
        )
        closing = await _exchange(port, [_get("/json", "Connection: close")], close=True)
        assert closing.endswith(b'{"path":"/json"}')
        assert b"connection: close" in closing


@contextlib.contextmanager
def _pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    try:
        yield left, right
    finally:
        left.close()
        right.close()


async def _transport(sock: socket.socket) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, sock)
    assert isinstance(transport, asyncio.Transport)
    return transport


async def test_writes_of_one_turn_leave_together_and_in_order(socket_writes: list[bytes]) -> None:
    with _pair() as (left, right):
        right.setblocking(False)
        wrapped = OneWritePerTurn(await _transport(left), asyncio.get_running_loop())
        wrapped.write(b"head;")
        wrapped.write(bytearray(b"body;"))
        assert socket_writes == []  # nothing yet: the turn is not over
        assert wrapped.get_write_buffer_size() == 10
        await asyncio.sleep(0)
        assert socket_writes == [b"head;body;"]
        assert await asyncio.get_running_loop().sock_recv(right, 100) == b"head;body;"
        wrapped.write(b"last;")
        wrapped.close()  # flushes first
        received = b""
        while chunk := await asyncio.get_running_loop().sock_recv(right, 100):
            received += chunk
        assert received == b"last;"


async def test_abort_drops_what_is_pending() -> None:
    with _pair() as (left, right):
        right.setblocking(False)
        wrapped = OneWritePerTurn(await _transport(left), asyncio.get_running_loop())
        wrapped.write(b"never sent")
        wrapped.abort()
        await asyncio.sleep(0)
        assert await asyncio.get_running_loop().sock_recv(right, 100) == b""
