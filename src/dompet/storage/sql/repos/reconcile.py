"""The ledger snapshot ``dompet reconcile`` checks (``domain/invariants.py``), read on one
consistent view of the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.transfers import TransferStatus
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.history.written import ItemRenderer
from dompet.storage.sql.tables import accounts, journals, postings, transfers


class Reconcile:
    def __init__(self, access: ConnectionAccess, items: ItemRenderer | None) -> None:
        """``items``: the layout the store renders items in as it writes them (its stored
        items are checked against it), or None."""
        self._access = access
        self._items = items

    async def snapshot(self) -> LedgerSnapshot:
        previous_after = (
            func.lag(postings.c.balance_after)
            .over(partition_by=postings.c.account_id, order_by=postings.c.id)
            .label("previous_after")
        )
        chained = (
            select(postings.c.account_id, postings.c.balance_before, previous_after)
            .where(postings.c.balance_before.is_not(None))
            .subquery()
        )
        async with self._access.read(consistent=True) as conn:
            balances = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.balance).where(
                        accounts.c.kind != AccountKind.SYSTEM
                    )
                )
            ).all()
            sums = (
                await conn.execute(
                    select(postings.c.account_id, func.sum(postings.c.amount)).group_by(
                        postings.c.account_id
                    )
                )
            ).all()
            pending = (
                await conn.execute(
                    select(func.coalesce(func.sum(transfers.c.amount), 0)).where(
                        transfers.c.status == TransferStatus.PENDING
                    )
                )
            ).scalar_one()
            broken_entries = await _ids(
                conn,
                select(postings.c.id).where(
                    postings.c.balance_before.is_not(None),
                    postings.c.balance_after != postings.c.balance_before + postings.c.amount,
                ),
            )
            broken_chains = await _ids(
                conn,
                select(chained.c.account_id)
                .where(chained.c.balance_before != func.coalesce(chained.c.previous_after, 0))
                .distinct(),
            )
            unbalanced = await _ids(
                conn,
                select(postings.c.journal_id)
                .group_by(postings.c.journal_id)
                .having(func.sum(postings.c.amount) != 0),
            )
            misjournaled = await _ids(conn, _misjournaled_transfers())
            miscopied = await _ids(
                conn,
                select(postings.c.id)
                .join(journals, journals.c.id == postings.c.journal_id)
                .where(
                    or_(
                        postings.c.kind != journals.c.kind,
                        postings.c.reference != journals.c.reference,
                        postings.c.remarks != journals.c.remarks,
                    )
                )
                .order_by(postings.c.id),
            )
            misrendered = await self._misrendered(conn)
        return LedgerSnapshot(
            customer_balances={r.id: int(r.balance) for r in balances},
            posting_sums={r[0]: int(r[1]) for r in sums},
            pending_transfer_total=int(pending),
            broken_entries=[str(e) for e in broken_entries],
            broken_chains=[str(a) for a in broken_chains],
            unbalanced_journals=[str(j) for j in unbalanced],
            misjournaled_transfers=[str(t) for t in misjournaled],
            miscopied_entries=[str(e) for e in miscopied],
            misrendered_entries=misrendered,
        )

    async def _misrendered(self, conn: AsyncConnection) -> list[str]:
        """The postings whose stored history item (in this store's layout) is not the item
        their entry renders to now (``ItemRenderer.render``, the one definition of an item):
        whichever engine, or writer, stored it."""
        items = self._items
        if items is None:
            return []
        c = postings.c
        rows = await conn.stream(
            select(
                c.id,
                c.kind,
                c.reference,
                c.account_id,
                c.amount,
                c.remarks,
                c.balance_before,
                c.balance_after,
                c.created_at,
                c.item,
            )
            .where(c.item_layout == items.fingerprint)
            .order_by(c.id)
        )
        kinds = {kind.value: kind for kind in JournalKind}
        misrendered: list[str] = []
        async for row in rows:
            now = items.render(
                kinds[row.kind],
                row.reference,
                row.account_id,
                int(row.amount),
                row.remarks,
                _int_or_none(row.balance_before),
                _int_or_none(row.balance_after),
                row.created_at,
            )
            if row.item != now:
                misrendered.append(str(row.id))
        return misrendered


async def _ids(conn: AsyncConnection, query: Any) -> Sequence[Any]:
    """The first column of every row of ``query``."""
    return (await conn.execute(query)).scalars().all()


def _misjournaled_transfers() -> Any:
    """Transfers whose journals do not match their status (see LedgerSnapshot)."""

    def count(kind: JournalKind) -> Any:
        return func.sum(case((journals.c.kind == kind, 1), else_=0))

    def expected(status: TransferStatus) -> Any:
        return case((transfers.c.status == status, 1), else_=0)

    return (
        select(transfers.c.id)
        .select_from(transfers.outerjoin(journals, journals.c.reference == transfers.c.id))
        .group_by(transfers.c.id, transfers.c.status)
        .having(
            or_(
                count(JournalKind.TRANSFER_OUT) != 1,
                count(JournalKind.TRANSFER_SETTLE) != expected(TransferStatus.SUCCESS),
                count(JournalKind.TRANSFER_REFUND) != expected(TransferStatus.FAILED),
            )
        )
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
