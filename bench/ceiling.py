"""The database's ceiling: the store alone posting payment journals, no HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from dompet.config import Settings
from dompet.container import open_settings_store
from dompet.domain.ids import new_id
from dompet.domain.ledger import payment_journal, topup_journal
from dompet.domain.users import User
from dompet.storage.port import LedgerStore


async def server_store(url: str) -> LedgerStore:
    """The store of ``url`` opened as the server opens it (history items rendered as written,
    in the display zone of this environment's settings)."""
    return await open_settings_store(
        Settings.model_validate({"env": "development", "database_url": url})
    )


async def store_ceiling(
    url: str, *, connections: int, duration: float, payers: int = 64
) -> dict[str, Any]:
    """``connections`` concurrent callers, each posting payments for ``duration`` seconds,
    from up to ``payers`` accounts (round robin; 1: every payment from one account)."""
    store = await server_store(url)
    try:
        now = datetime.now(UTC)
        users = []
        prefix = "0813" if payers > 1 else "0814"  # one database may serve both runs
        for i in range(max(1, min(connections, payers))):
            user = User(new_id(), "Ceiling", str(i), f"{prefix}{i:08d}", "Jakarta", now, now)
            await store.add_user(user, "not-a-real-hash")
            await store.post_journal(topup_journal(new_id(), user.id, 10**11, now))
            users.append(user.id)
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + duration

        async def caller(index: int) -> None:
            nonlocal errors
            user_id = users[index % len(users)]
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    journal = payment_journal(new_id(), user_id, 1, "bench", datetime.now(UTC))
                    await store.post_journal(journal)
                except Exception:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(i) for i in range(connections)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        await store.close()
    latencies.sort()
    count = len(latencies)
    return {
        "rps": count / elapsed,
        "p50_ms": latencies[count // 2] * 1000 if count else 0.0,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
        "errors": errors,
        "requests": count,
        "extra": {"caller CPU us/request": cpu * 1e6 / max(count, 1)},
    }
