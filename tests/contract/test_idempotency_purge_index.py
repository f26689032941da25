"""The purge's index on idempotency_keys.expires_at: SQL migration 0005, MongoDB step 0005."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from sqlalchemy import Connection, inspect

from dompet.storage import migrate
from dompet.storage.sql.migrate import run_alembic
from tests.support.sql import sql_connection

INDEX = "ix_idempotency_keys_expires_at"


async def _sql_indexes(url: str) -> dict[str, list[str]]:
    def read(connection: Connection) -> list[Any]:
        return list(inspect(connection).get_indexes("idempotency_keys"))

    async with sql_connection(url) as conn:
        found = await conn.run_sync(read)
    return {i["name"]: list(i["column_names"]) for i in found}


async def test_migrations_index_expires_at(database_url: str, engine_name: str) -> None:
    if engine_name == "mongodb":
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
        try:
            info = await client.get_default_database().idempotency_keys.index_information()
        finally:
            await client.close()
        # by its key: the nx-27017 test server names indexes its own way
        assert any(i["key"] == [("expires_at", 1)] for i in info.values()), info
        return
    assert (await _sql_indexes(database_url))[INDEX] == ["expires_at"]
    await run_alembic(database_url, "downgrade", "0004")
    assert INDEX not in await _sql_indexes(database_url)
    assert (await migrate(database_url))[:1] == ["0005"]  # then any later revision
    assert (await _sql_indexes(database_url))[INDEX] == ["expires_at"]
