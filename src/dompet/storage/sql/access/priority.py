"""A gate in front of a connection pool that lets urgent callers go first."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PriorityGate:
    """At most ``size`` holders at once; a freed slot goes to the oldest urgent waiter, then
    to the oldest other one.

    On PostgreSQL it sits in front of the pool (same size), so that settling an accepted
    transfer -- two short statements -- does not queue behind every new request waiting for
    a connection under load (the settlement lag was mostly those waits).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a gate needs at least one slot")
        self._free = size
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not self._urgent and not self._normal:
            self._free -= 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent if urgent else self._normal).append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # the slot was handed over just before the cancel
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():  # a cancelled waiter stays queued until it is skipped
                    waiter.set_result(None)
                    return
        self._free += 1
