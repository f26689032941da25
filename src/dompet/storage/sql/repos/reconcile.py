"""The ledger snapshot ``dompet reconcile`` checks (``domain/invariants.py``), read on one
consistent view of the database, and the stored history items checked against the one
definition of an item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.transfers import TransferStatus
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.account_order import BELOW_EVERY_ID
from dompet.storage.sql.history.written import ItemRenderer
from dompet.storage.sql.tables import Money, accounts, journals, postings, transfers


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
        return LedgerSnapshot(
            customer_balances={r.id: int(r.balance) for r in balances},
            posting_sums={r[0]: int(r[1]) for r in sums},
            pending_transfer_total=int(pending),
            broken_entries=[str(e) for e in broken_entries],
            broken_chains=[str(a) for a in broken_chains],
            unbalanced_journals=[str(j) for j in unbalanced],
            misjournaled_transfers=[str(t) for t in misjournaled],
            miscopied_entries=[str(e) for e in miscopied],
            misrendered_entries=await self._misrendered(),
        )

    async def _misrendered(self) -> list[str]:
        """The postings whose stored history item (in this store's layout) is not the item
        their entry renders to now (``ItemRenderer.render``, the one definition of an item),
        whichever engine, or writer, stored it.

        Each row is checked against itself (its item and its columns are written together and
        never change), so this reads outside the snapshot: bare rows in batches by sequence,
        on the hot reads' path (``ConnectionAccess.fetch``), without SQLAlchemy's result
        layer, which cost more than the rendering."""
        items = self._items
        if items is None:
            return []
        query = self._access.compiled(_stored_items)
        utc, kinds = self._access.utc, _KINDS
        params: dict[str, Any] = {"item_layout": items.fingerprint, "limit": CHECK_BATCH}
        params["after"] = BELOW_EVERY_ID
        misrendered: list[str] = []
        while True:
            rows = await self._access.fetch(query, params)
            for (
                sequence,
                kind,
                reference,
                account,
                amount,
                remarks,
                before,
                after,
                at,
                item,
            ) in rows:
                now = items.render(
                    kinds[kind], reference, account, amount, remarks, before, after, utc(at)
                )
                if item != now:
                    misrendered.append(str(sequence))
            if len(rows) < CHECK_BATCH:
                return misrendered
            params["after"] = rows[-1][0]
            await asyncio.sleep(0)  # a batch's rendering at a time on the event loop


CHECK_BATCH = 5000
"""Stored items checked per statement (memory stays bounded on any ledger)."""

_KINDS = {kind.value: kind for kind in JournalKind}


def _stored_items() -> Any:
    """The postings with an item stored in a layout, after a sequence, in sequence order
    (bound :item_layout, :after, :limit)."""
    c = postings.c
    return (
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
        .where(
            c.item_layout == bindparam("item_layout", type_=BigInteger),
            c.id > bindparam("after", type_=Money),
        )
        .order_by(c.id)
        .limit(bindparam("limit", type_=Integer))
    )


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
