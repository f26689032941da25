"""What the dashboard and /metrics show: transfers by status, the oldest PENDING one,
settlement times, troubled transfers, and the workers' heartbeats."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from dompet.domain.monitoring import SettledSample, WorkerHeartbeat
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import stamp, unstamp
from dompet.storage.mongo.documents import transfer_of


class Monitoring:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def transfer_counts(self) -> dict[TransferStatus, int]:
        counts = dict.fromkeys(TransferStatus, 0)
        async with self._access.read():
            async for doc in await self._db.transfers.aggregate(
                [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
            ):
                counts[TransferStatus(doc["_id"])] = int(doc["n"])
        return counts

    async def oldest_pending_created_at(self) -> datetime | None:
        async with self._access.read():
            doc = await self._db.transfers.find_one(
                {"status": TransferStatus.PENDING.value},
                {"created_at": 1},
                sort=[("created_at", ASCENDING)],
            )
        return unstamp(doc["created_at"]) if doc else None

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        async with self._access.read():
            docs = [
                doc
                async for doc in self._db.transfers.find(
                    {"settled_at": {"$gte": stamp(since)}},
                    {"status": 1, "created_at": 1, "settled_at": 1},
                )
                .sort("settled_at", DESCENDING)
                .limit(limit)
            ]
        return [
            SettledSample(d["_id"], d["status"], unstamp(d["created_at"]), unstamp(d["settled_at"]))
            for d in docs
        ]

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        async with self._access.read():
            docs = [
                doc
                async for doc in self._db.transfers.find(
                    {
                        "$or": [
                            {"status": TransferStatus.FAILED.value},
                            {"status": TransferStatus.PENDING.value, "attempts": {"$gt": 0}},
                        ]
                    }
                )
                .sort("created_at", DESCENDING)
                .limit(limit)
            ]
        return [transfer_of(d) for d in docs]

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        async with self._access.write():
            await self._db.worker_heartbeats.update_one(
                {"_id": heartbeat.worker_id},
                {
                    "$set": {
                        "kind": heartbeat.kind,
                        "started_at": stamp(heartbeat.started_at),
                        "last_seen_at": stamp(heartbeat.last_seen_at),
                        "settled": heartbeat.settled,
                        "failed": heartbeat.failed,
                        "info": dict(heartbeat.info),
                    }
                },
                upsert=True,
            )

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        async with self._access.read():
            docs = [
                doc
                async for doc in self._db.worker_heartbeats.find().sort("last_seen_at", DESCENDING)
            ]
        return [
            WorkerHeartbeat(
                worker_id=d["_id"],
                kind=d["kind"],
                started_at=unstamp(d["started_at"]),
                last_seen_at=unstamp(d["last_seen_at"]),
                settled=int(d["settled"]),
                failed=int(d["failed"]),
                info={str(k): str(v) for k, v in (d.get("info") or {}).items()},
            )
            for d in docs
        ]
