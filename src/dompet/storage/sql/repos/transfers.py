"""Transfers, settlement's side: reading one, leasing the due ones to a worker, recording a
failed attempt, retrying, releasing a worker's leases.

A transfer's row is written with its debit journal, and flipped to its final status with
its credit or refund journal, by the journal writer (``storage/sql/journal``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.tables import time_columns, transfers

GET_TRANSFER = Statement("SELECT * FROM transfers WHERE id = $1::text", time_columns(transfers))
"""A hot read: each settlement reads its transfer first."""


class Transfers:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        row = await self._access.fetch_row(GET_TRANSFER, transfer_id, urgent=True)
        return transfer_of(row) if row else None

    async def claim_due_transfers(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Transfer]:
        due = (
            select(transfers.c.id)
            .where(
                transfers.c.status == TransferStatus.PENDING,
                transfers.c.next_attempt_at <= now,
                or_(transfers.c.claimed_until.is_(None), transfers.c.claimed_until < now),
            )
            .order_by(transfers.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._access.write() as conn:
            rows = (
                await conn.execute(
                    update(transfers)
                    .where(transfers.c.id.in_(due.scalar_subquery()))
                    .values(claimed_by=worker_id, claimed_until=now + lease)
                    .returning(*transfers.c)
                )
            ).all()
        return sorted((transfer_of(r) for r in rows), key=lambda t: t.created_at)

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        async with self._access.write() as conn:
            row = (
                await conn.execute(
                    update(transfers)
                    .where(
                        transfers.c.id == transfer_id, transfers.c.status == TransferStatus.PENDING
                    )
                    .values(
                        attempts=transfers.c.attempts + 1,
                        last_error=error[:2000],
                        next_attempt_at=next_attempt_at,
                        claimed_by=None,
                        claimed_until=None,
                    )
                    .returning(*transfers.c)
                )
            ).first()
        return transfer_of(row) if row else None

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        async with self._access.write() as conn:
            result = await conn.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id, transfers.c.status == TransferStatus.PENDING)
                .values(next_attempt_at=now, claimed_by=None, claimed_until=None)
            )
        return result.rowcount == 1

    async def release_claims(self, worker_id: str) -> int:
        async with self._access.write() as conn:
            result = await conn.execute(
                update(transfers)
                .where(
                    transfers.c.claimed_by == worker_id,
                    transfers.c.status == TransferStatus.PENDING,
                )
                .values(claimed_by=None, claimed_until=None)
            )
        return int(result.rowcount)

    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        async with self._access.read() as conn:
            rows = (
                await conn.execute(
                    select(transfers)
                    .where(
                        transfers.c.status == TransferStatus.PENDING,
                        transfers.c.next_attempt_at <= due_before,
                    )
                    .order_by(transfers.c.next_attempt_at)
                    .limit(limit)
                )
            ).all()
        return [transfer_of(r) for r in rows]


def transfer_of(row: Any) -> Transfer:
    """A transfers row (SQLAlchemy's, or a hot read's) as a Transfer (its lease left out)."""
    return Transfer(
        id=row.id,
        sender_id=row.sender_id,
        target_id=row.target_id,
        amount=int(row.amount),
        remarks=row.remarks,
        status=TransferStatus(row.status),
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        settled_at=row.settled_at,
    )
