"""The API's SAQ enqueue when Redis is gone or silent: bounded, and then left to the sweep.

An accepted transfer is committed before it is enqueued, so the enqueue must never hold its
answer up for long: a Redis that refuses connections fails at once, one that accepts them and
never answers is given up after REDIS_TIMEOUT_SECONDS, and after a failure the next enqueues
are skipped for that long (the sweep enqueues them). A real redis client, no Redis needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dompet.worker.saq import SaqDispatcher, settlement_queue
from tests.support.servers import find_free_port

TIMEOUT = 0.3


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        await server.wait_closed()


async def _timed(dispatcher: SaqDispatcher, transfer_id: str) -> float:
    started = time.monotonic()
    await dispatcher._enqueue(transfer_id, 0)  # never raises: the sweep will do it
    return time.monotonic() - started


async def test_a_silent_redis_holds_an_enqueue_no_longer_than_the_timeout() -> None:
    async with silent_server() as port:
        queue = settlement_queue(f"redis://127.0.0.1:{port}/0", "outage", TIMEOUT)
        dispatcher = SaqDispatcher(queue, TIMEOUT)
        try:
            assert await _timed(dispatcher, "t-1") < TIMEOUT + 0.5
            assert await _timed(dispatcher, "t-2") < 0.05  # skipped: Redis just failed
            assert dispatcher.skipped == 1
            await asyncio.sleep(TIMEOUT)
            assert await _timed(dispatcher, "t-3") < TIMEOUT + 0.5  # tried again
            assert dispatcher.skipped == 1
        finally:
            with contextlib.suppress(Exception):  # Redis is not there to say goodbye to
                async with asyncio.timeout(1):
                    await queue.disconnect()


async def test_a_redis_that_is_gone_fails_an_enqueue_at_once() -> None:
    queue = settlement_queue(f"redis://127.0.0.1:{find_free_port()}/0", "outage", TIMEOUT)
    dispatcher = SaqDispatcher(queue, TIMEOUT)
    try:
        assert await _timed(dispatcher, "t-1") <= TIMEOUT + 0.5
        assert await _timed(dispatcher, "t-2") < 0.05
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await queue.disconnect()
