"""PINs hashed with Argon2id (argon2-cffi), optionally peppered, off the event loop.

At most ``max_concurrent`` hashes run at once per process (each takes PIN_HASH_MEMORY_KIB and
a core for tens of milliseconds): one more is refused at once with :class:`ServerBusy` (HTTP
503 with Retry-After), never queued, so a flood of logins cannot pile up memory and latency.
A slot is held until its thread has finished, even if the request waiting for it went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from dompet.domain.errors import ServerBusy

BUSY_RETRY_AFTER_SECONDS = 1
T = TypeVar("T")


class Argon2PinHasher:
    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 4,
        pepper: bytes | None = None,
        max_concurrent: int = 4,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._pepper = pepper
        self._dummy = self._hasher.hash(self._peppered("000000"))
        self._free = max_concurrent
        self._threads = ThreadPoolExecutor(max_concurrent, thread_name_prefix="argon2")

    @property
    def free_slots(self) -> int:
        """Hashes that may start now (for tests and metrics)."""
        return self._free

    def _peppered(self, pin: str) -> str:
        if not self._pepper:
            return pin
        return hmac.new(self._pepper, pin.encode(), hashlib.sha256).hexdigest()

    async def hash(self, pin: str) -> str:
        return await self._bounded(self._hasher.hash, self._peppered(pin))

    async def verify(self, pin_hash: str, pin: str) -> bool:
        return await self._bounded(self._verify, pin_hash, self._peppered(pin))

    async def waste_time(self, pin: str) -> None:
        await self.verify(self._dummy, pin + "x")

    async def _bounded(self, work: Callable[..., T], *args: str) -> T:
        if self._free <= 0:
            raise ServerBusy(BUSY_RETRY_AFTER_SECONDS)
        self._free -= 1
        loop = asyncio.get_running_loop()

        def finished(_: Future[T]) -> None:  # on the hashing thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to free
                loop.call_soon_threadsafe(self._release)

        try:
            running = self._threads.submit(work, *args)
        except BaseException:
            self._release()
            raise
        running.add_done_callback(finished)
        return await asyncio.wrap_future(running)

    def _release(self) -> None:
        self._free += 1

    def _verify(self, pin_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(pin_hash, secret)
        except (VerificationError, InvalidHashError):
            return False
