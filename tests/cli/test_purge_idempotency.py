"""`dompet purge-idempotency`: deletes the expired keys of DATABASE_URL, says how many."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from dompet.cli import app
from dompet.domain.idempotency import IdempotencyKey, ReplayResponse
from dompet.storage import open_store

runner = CliRunner()
TTL, STALE = timedelta(hours=1), timedelta(seconds=60)


def _key(name: str) -> IdempotencyKey:
    return IdempotencyKey(scope="cli-user", key=name, fingerprint=f"fp-{name}")


async def _seed(url: str) -> None:
    """Two keys that expired an hour ago, one answered a minute ago (live)."""
    store = await open_store(url, mongodb_allow_standalone=True)
    try:
        now = datetime.now(UTC)
        for name in ("old-1", "old-2"):
            await store.claim_idempotency(_key(name), now - 2 * TTL, TTL, STALE)
        await store.claim_idempotency(_key("live"), now - timedelta(minutes=1), TTL, STALE)
        await store.answer_idempotency(_key("live"), 409, b'{"message":"no"}')
    finally:
        await store.close()


async def _live_key_answer(url: str) -> object:
    store = await open_store(url, mongodb_allow_standalone=True)
    try:
        return await store.claim_idempotency(_key("live"), datetime.now(UTC), TTL, STALE)
    finally:
        await store.close()


def test_purge_idempotency_deletes_expired_keys_and_says_how_many(database_url: str) -> None:
    asyncio.run(_seed(database_url))
    env = {"DATABASE_URL": database_url, "LOG_JSON": "0", "MONGODB_ALLOW_STANDALONE": "1"}

    first = runner.invoke(app, ["purge-idempotency"], env=env)
    assert first.exit_code == 0, first.output
    assert "deleted 2 expired idempotency keys" in first.output
    assert "deleted 0 expired throttles and sessions" in first.output
    again = runner.invoke(app, ["purge-idempotency"], env=env)
    assert again.exit_code == 0, again.output
    assert "deleted 0 expired idempotency keys" in again.output

    answer = asyncio.run(_live_key_answer(database_url))
    assert answer == ReplayResponse(409, b'{"message":"no"}')
