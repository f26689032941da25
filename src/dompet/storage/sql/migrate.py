"""Applying the Alembic migrations programmatically (``dompet migrate``, ``make run``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from dompet.storage.sql.engine import async_url, create_engines, is_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


Action = Literal["upgrade", "downgrade"]


async def run_alembic(database_url: str, action: Action, revision: str) -> str | None:
    """``alembic <action> <revision>`` on ``database_url``, committed on a writer connection
    of its own; the revision the database was at before.

    SQLite runs its migrations with foreign keys off (SQLite's own recipe for rebuilding a
    table that others reference, as 0007 does to add a CHECK), and checks every foreign key
    afterwards; the connection is disposed of with its engine, so the setting goes with it.
    """
    config = alembic_config(database_url)
    writer, reader = create_engines(database_url)
    try:
        async with writer.connect() as conn:
            if is_sqlite(database_url):  # before the transaction: inside one it is ignored
                driver: Any = (await conn.get_raw_connection()).driver_connection
                await driver.execute("PRAGMA foreign_keys=OFF")
            before = await conn.run_sync(_run_alembic, config, action, revision)
            await conn.commit()
    finally:
        await writer.dispose()
        if reader is not writer:
            await reader.dispose()
    return before


def _run_alembic(
    connection: Connection, config: Config, action: Action, revision: str
) -> str | None:
    before = _current(connection)
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration left rows with broken foreign keys: {broken[:5]}")
    return before


async def upgrade(database_url: str) -> list[str]:
    """Upgrade to head; return the revisions that were applied (oldest first)."""
    before = await run_alembic(database_url, "upgrade", "head")
    script = ScriptDirectory.from_config(alembic_config(database_url))
    applied = [rev.revision for rev in script.iterate_revisions("head", before or "base")]
    return list(reversed([r for r in applied if r != before]))


def upgrade_sync(database_url: str) -> list[str]:
    return asyncio.run(upgrade(database_url))
