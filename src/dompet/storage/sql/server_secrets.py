"""Server secrets kept in an SQL database (see dompet/security/kept_secrets.py for when).

Written once per name: of processes racing to keep one, the first INSERT wins and every one
of them reads that value back, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.storage.sql.tables import server_secrets


async def keep(
    conn: AsyncConnection, insert_of: Callable[[Any], Any], name: str, candidate: str, now: datetime
) -> str:
    """Store ``candidate`` under ``name`` unless a value is there; return the stored value."""
    await conn.execute(
        insert_of(server_secrets)
        .values(name=name, value=candidate, created_at=now)
        .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
    )
    value: str = (
        await conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name))
    ).scalar_one()
    return value
