"""A gate in front of a connection pool that lets urgent callers go first, and bounds the wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class GateFull(Exception):
    """Too many requests are already waiting for a connection: refused at once."""


class GateTimeout(Exception):
    """No connection became free within the gate's wait timeout."""


class PriorityGate:
    """At most ``size`` holders at once; a freed slot goes to the oldest urgent waiter, then
    to the oldest other one.

    On PostgreSQL it sits in front of the pool (same size), so that settling an accepted
    transfer -- two short statements -- does not queue behind every new request waiting for
    a connection under load (the settlement lag was mostly those waits).

    It is also where a slow or absent database stops piling requests up in memory: at most
    ``max_waiting`` ordinary callers wait (one more is refused with :class:`GateFull`), and
    none waits longer than ``wait_timeout`` seconds (:class:`GateTimeout`). Urgent callers
    (settlements: bounded by the workers' own concurrency) are never refused for lack of room,
    but their wait is bounded too.
    """

    def __init__(
        self, size: int, *, max_waiting: int | None = None, wait_timeout: float | None = None
    ) -> None:
        if size < 1:
            raise ValueError("a gate needs at least one slot")
        if max_waiting is not None and max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        self._free = size
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._urgent) + len(self._normal)

    @asynccontextmanager
    async def slot(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not self._urgent and not self._normal:
            self._free -= 1
        else:
            if (
                not urgent
                and self.max_waiting is not None
                and len(self._normal) >= self.max_waiting
            ):
                raise GateFull(f"{len(self._normal)} requests are already waiting")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue = self._urgent if urgent else self._normal
            queue.append(waiter)
            try:
                async with asyncio.timeout(self.wait_timeout):
                    await waiter
            except (asyncio.CancelledError, TimeoutError) as exc:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # the slot was handed over just before the cancel
                else:
                    with contextlib.suppress(ValueError):
                        queue.remove(waiter)  # the count of waiters stays true
                if isinstance(exc, TimeoutError):
                    raise GateTimeout(
                        f"no connection became free within {self.wait_timeout:g} s"
                    ) from None
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():  # a cancelled waiter may still be queued: skip it
                    waiter.set_result(None)
                    return
        self._free += 1
