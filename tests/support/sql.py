"""Straight SQL on a test database, beside the store (inspecting or changing its rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.storage.sql.engine import create_engines


@asynccontextmanager
async def sql_connection(
    database_url: str, *, begin: bool = False
) -> AsyncIterator[AsyncConnection]:
    """A connection on engines of its own, disposed after; with ``begin``, in a transaction
    that commits when the block exits."""
    writer, reader = create_engines(database_url)
    try:
        async with writer.begin() if begin else writer.connect() as conn:
            yield conn
    finally:
        await writer.dispose()
        if reader is not writer:
            await reader.dispose()
