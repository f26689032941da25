"""The ledger snapshot ``dompet reconcile`` checks (``domain/invariants.py``), read in one
snapshot transaction. (MongoDB stores no history items: nothing of them to check.)"""

from __future__ import annotations

from collections import Counter

from pymongo import ASCENDING

from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import AccountKind, JournalKind
from dompet.domain.transfers import TransferStatus
from dompet.storage.mongo.access import MongoAccess, Session


class Reconcile:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def snapshot(self) -> LedgerSnapshot:
        async def work(s: Session) -> LedgerSnapshot:
            balances = {
                doc["_id"]: int(doc["balance"])
                async for doc in self._db.accounts.find(
                    {"kind": {"$ne": AccountKind.SYSTEM.value}}, {"balance": 1}, session=s
                )
            }
            sums = {
                doc["_id"]: int(doc["total"])
                async for doc in await self._db.postings.aggregate(
                    [{"$group": {"_id": "$account_id", "total": {"$sum": "$amount"}}}], session=s
                )
            }
            pending = 0
            async for doc in await self._db.transfers.aggregate(
                [
                    {"$match": {"status": TransferStatus.PENDING.value}},
                    {"$group": {"_id": None, "total": {"$sum": "$amount"}}},
                ],
                session=s,
            ):
                pending = int(doc["total"])
            unbalanced = [
                doc["_id"]
                async for doc in await self._db.postings.aggregate(
                    [
                        {"$group": {"_id": "$journal_id", "total": {"$sum": "$amount"}}},
                        {"$match": {"total": {"$ne": 0}}},
                    ],
                    session=s,
                )
            ]
            broken_entries: list[str] = []
            broken_chains: list[str] = []
            previous: tuple[str, int] | None = None  # (account, balance_after)
            async for doc in self._db.postings.find(
                {"seq": {"$gte": 1}},
                {"account_id": 1, "amount": 1, "balance_before": 1, "balance_after": 1},
                session=s,
            ).sort([("account_id", ASCENDING), ("seq", ASCENDING)]):
                account, before, after = (
                    doc["account_id"],
                    doc["balance_before"],
                    doc["balance_after"],
                )
                if after != before + doc["amount"]:
                    broken_entries.append(str(doc["_id"]))
                expected = previous[1] if previous and previous[0] == account else 0
                if before != expected and (not broken_chains or broken_chains[-1] != account):
                    broken_chains.append(account)
                previous = (account, after)
            return LedgerSnapshot(
                customer_balances=balances,
                posting_sums=sums,
                pending_transfer_total=pending,
                broken_entries=broken_entries,
                broken_chains=broken_chains,
                unbalanced_journals=unbalanced,
                misjournaled_transfers=await self._misjournaled_transfers(s),
            )

        return await self._access.transaction(work)

    async def _misjournaled_transfers(self, s: Session) -> list[str]:
        """Transfers whose journals do not match their status (see LedgerSnapshot)."""
        kinds = (JournalKind.TRANSFER_OUT, JournalKind.TRANSFER_SETTLE, JournalKind.TRANSFER_REFUND)
        counts: dict[str, Counter[str]] = {}
        async for doc in self._db.journals.find(
            {"kind": {"$in": [k.value for k in kinds]}}, {"kind": 1, "reference": 1}, session=s
        ):
            counts.setdefault(str(doc["reference"]), Counter())[doc["kind"]] += 1
        wrong: list[str] = []
        async for doc in self._db.transfers.find({}, {"status": 1}, session=s).sort(
            "_id", ASCENDING
        ):
            seen = counts.pop(str(doc["_id"]), Counter())
            status = TransferStatus(doc["status"])
            if (
                seen[JournalKind.TRANSFER_OUT.value] != 1
                or seen[JournalKind.TRANSFER_SETTLE.value] != int(status is TransferStatus.SUCCESS)
                or seen[JournalKind.TRANSFER_REFUND.value] != int(status is TransferStatus.FAILED)
            ):
                wrong.append(str(doc["_id"]))
        return wrong
