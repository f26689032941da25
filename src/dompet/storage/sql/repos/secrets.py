"""Server secrets kept in the database (see dompet/security/kept_secrets.py for when).

Written once per name: of processes racing to keep one, the first INSERT wins and every one
of them reads that value back, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.tables import server_secrets


class ServerSecrets:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def keep_secret(self, name: str, candidate: str, now: datetime) -> str:
        """Store ``candidate`` under ``name`` unless a value is there; return the stored value."""
        async with self._access.write() as conn:
            await conn.execute(
                self._access.upsert(server_secrets)
                .values(name=name, value=candidate, created_at=now)
                .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
            )
            value: str = (
                await conn.execute(
                    select(server_secrets.c.value).where(server_secrets.c.name == name)
                )
            ).scalar_one()
        return value
