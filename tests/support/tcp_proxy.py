"""A TCP proxy the tests control, to put a bad network between a client and a server.

``async with TcpProxy(port) as proxy:`` listens on a free 127.0.0.1 port and forwards every
connection to ``127.0.0.1:port``. While it runs, a test can:

* ``delay(seconds)``: hold every chunk of data that long, each way (latency);
* ``stall()``: stop forwarding anything, on open connections and new ones (packets dropped:
  the peers see no error, only silence, until their own timeouts fire);
* ``cut()``: close every open connection, and every new one as soon as it is accepted;
* ``heal()``: back to forwarding at once (stalled data flows again).

Everything runs on the caller's event loop; the proxy binds the loopback address only.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.latency = 0.0
        self.cutting = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        """Connections accepted so far."""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._flowing.set()
        self._close_all()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    # -- the network's condition ---------------------------------------------------------------
    def delay(self, seconds: float) -> None:
        self.latency = seconds

    def stall(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        self.cutting = True
        self._close_all()

    def heal(self) -> None:
        self.latency = 0.0
        self.cutting = False
        self._flowing.set()

    # -- forwarding ---------------------------------------------------------------------------
    def _close_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()  # a reset, not a polite goodbye
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.cutting:
            writer.transport.abort()
            return
        self._writers.add(writer)
        await self._flowing.wait()  # a stalled network does not connect either
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        if self.cutting:
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.add(up_writer)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        for task in pipes:
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await source.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.transport.abort()
            self._writers.discard(sink)
