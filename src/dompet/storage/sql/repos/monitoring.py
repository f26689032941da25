"""What the dashboard and /metrics show: transfers by status, the oldest PENDING one,
settlement times, troubled transfers, and the workers' heartbeats."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from dompet.domain.monitoring import SettledSample, WorkerHeartbeat
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.repos.transfers import transfer_of
from dompet.storage.sql.tables import transfers, worker_heartbeats


class Monitoring:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def transfer_counts(self) -> dict[TransferStatus, int]:
        async with self._access.read() as conn:
            rows = (
                await conn.execute(
                    select(transfers.c.status, func.count()).group_by(transfers.c.status)
                )
            ).all()
        counts = dict.fromkeys(TransferStatus, 0)
        counts.update({TransferStatus(r[0]): int(r[1]) for r in rows})
        return counts

    async def oldest_pending_created_at(self) -> datetime | None:
        async with self._access.read() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(transfers.c.created_at)
                    .where(transfers.c.status == TransferStatus.PENDING)
                    .order_by(transfers.c.created_at)
                    .limit(1)
                )
            ).scalar_one_or_none()
        return value

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        async with self._access.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        transfers.c.id,
                        transfers.c.status,
                        transfers.c.created_at,
                        transfers.c.settled_at,
                    )
                    .where(transfers.c.settled_at >= since)
                    .order_by(transfers.c.settled_at.desc())
                    .limit(limit)
                )
            ).all()
        return [SettledSample(r.id, r.status, r.created_at, r.settled_at) for r in rows]

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        async with self._access.read() as conn:
            rows = (
                await conn.execute(
                    select(transfers)
                    .where(
                        or_(
                            transfers.c.status == TransferStatus.FAILED,
                            and_(
                                transfers.c.status == TransferStatus.PENDING,
                                transfers.c.attempts > 0,
                            ),
                        )
                    )
                    .order_by(transfers.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [transfer_of(r) for r in rows]

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        values = {
            "kind": heartbeat.kind,
            "started_at": heartbeat.started_at,
            "last_seen_at": heartbeat.last_seen_at,
            "settled": heartbeat.settled,
            "failed": heartbeat.failed,
            "info": json.dumps(heartbeat.info),
        }
        async with self._access.write() as conn:
            await conn.execute(
                self._access.upsert(worker_heartbeats)
                .values(worker_id=heartbeat.worker_id, **values)
                .on_conflict_do_update(index_elements=[worker_heartbeats.c.worker_id], set_=values)
            )

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        async with self._access.read() as conn:
            rows = (
                await conn.execute(
                    select(worker_heartbeats).order_by(worker_heartbeats.c.last_seen_at.desc())
                )
            ).all()
        return [
            WorkerHeartbeat(
                worker_id=r.worker_id,
                kind=r.kind,
                started_at=r.started_at,
                last_seen_at=r.last_seen_at,
                settled=r.settled,
                failed=r.failed,
                info=json.loads(r.info),
            )
            for r in rows
        ]
