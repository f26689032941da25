"""Server secrets kept in the database (see dompet/security/kept_secrets.py for when).

One upsert with ``$setOnInsert``: of processes racing to keep one, all read back the first
value stored.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import stamp


class ServerSecrets:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def keep_secret(self, name: str, candidate: str, now: datetime) -> str:
        async with self._access.write():
            with contextlib.suppress(DuplicateKeyError):  # a concurrent upsert was first: read it
                await self._db.server_secrets.update_one(
                    {"_id": name},
                    {"$setOnInsert": {"value": candidate, "created_at": stamp(now)}},
                    upsert=True,
                )
            doc = await self._db.server_secrets.find_one({"_id": name})
        assert doc is not None
        return str(doc["value"])
