"""MongoDB's connection access: the one way the store's parts reach the database.

- ``transaction(work)``: ``work(session)`` in one multi-document transaction, through
  ``session.with_transaction``, which retries transient transaction errors (write conflicts,
  elections) and unknown commit results. Snapshot reads and majority writes on a replica set.
- ``write()`` / ``read()``: a single-document operation, atomic by itself, no transaction.

On a standalone test server (nx-27017, ``MONGODB_ALLOW_STANDALONE``) there is no real
concurrency control, so each of these holds one lock per event loop: one operation at a time.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from dompet.storage.mongo.client import MongoConnection

T = TypeVar("T")
Session = AsyncClientSession


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class MongoAccess:
    """The client, the database, and how an operation or a transaction runs on them."""

    def __init__(self, connection: MongoConnection) -> None:
        self._connection = connection
        self.db = connection.db
        self._serialise = connection.standalone
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        if connection.standalone:  # test servers: no real concurrency control
            self._txn_options: dict[str, Any] = {}
        else:
            self._txn_options = {
                "read_concern": ReadConcern("snapshot"),
                "write_concern": WriteConcern("majority"),
                "read_preference": ReadPreference.PRIMARY,
            }

    def _guard(self) -> asyncio.Lock | _NoLock:
        """On a standalone test server (nx-27017), one operation at a time per event loop."""
        if not self._serialise:
            return _NoLock()
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """One operation outside a transaction (atomic on its one document)."""
        async with self._guard():
            yield

    read = write

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction; transient errors re-run it (driver's retry loop)."""
        async with self._guard(), self._connection.client.start_session() as session:
            result: T = await session.with_transaction(work, **self._txn_options)
            return result

    async def close(self) -> None:
        await self._connection.close()
