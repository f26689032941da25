"""PINs hashed with Argon2id (argon2-cffi), optionally peppered, off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2PinHasher:
    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 4,
        pepper: bytes | None = None,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._pepper = pepper
        self._dummy = self._hasher.hash(self._peppered("000000"))

    def _peppered(self, pin: str) -> str:
        if not self._pepper:
            return pin
        return hmac.new(self._pepper, pin.encode(), hashlib.sha256).hexdigest()

    async def hash(self, pin: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, self._peppered(pin))

    async def verify(self, pin_hash: str, pin: str) -> bool:
        return await asyncio.to_thread(self._verify, pin_hash, self._peppered(pin))

    async def waste_time(self, pin: str) -> None:
        await self.verify(self._dummy, pin + "x")

    def _verify(self, pin_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(pin_hash, secret)
        except (VerificationError, InvalidHashError):
            return False
