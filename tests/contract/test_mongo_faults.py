"""MongoDB gone: with a serving process's limits, a store call is a StoreUnavailable within
DB_CONNECT_TIMEOUT_SECONDS (PyMongo's own server selection waits 30 s). On an nx-27017 server
of its own, which the test stops; skipped with a real replica set (MONGODB_TEST_URL), which is
not ours to stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dompet.domain.errors import StoreUnavailable
from dompet.storage import faults, migrate, open_store
from tests.support.servers import MongoWireServer, ServerUnavailable, require_or_skip


async def test_a_call_to_a_mongodb_that_is_gone_fails_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    try:
        server = await asyncio.to_thread(MongoWireServer.start, tmp_path)
    except ServerUnavailable as exc:
        require_or_skip(exc)
    try:
        url = server.database_url("faults")
        await migrate(url, mongodb_allow_standalone=True)
        limits = faults.StoreLimits(connect_timeout=0.5)
        store = faults.guarded(await open_store(url, mongodb_allow_standalone=True, limits=limits))
        try:
            assert await store.balance("wallet:nobody") is None
            await asyncio.to_thread(server.stop)
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await store.balance("wallet:nobody")
            assert time.monotonic() - started < 3.0
            assert caught.value.message == faults.UNREACHABLE
        finally:
            await store.close()
    finally:
        server.stop()
