"""The history read model on MongoDB: an account's entries, keyset-paged by ``seq`` on the
``(account_id, seq)`` index, each transfer debit with its transfer's status.

History pages are not rendered here (``render_entries`` is None): the API presents
MongoDB's entries (``api/presenters.py``).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from dompet.domain.history import ItemLayout
from dompet.domain.ledger import Entry, JournalKind
from dompet.storage.mongo.access import MongoAccess
from dompet.storage.mongo.client import Document
from dompet.storage.mongo.documents import entry_of, posting_id
from dompet.storage.port import RenderedItems


class HistoryReads:
    def __init__(self, access: MongoAccess) -> None:
        self._access = access
        self._db = access.db

    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        query: Document = {"account_id": account_id, "seq": {"$gte": 1}}
        if before is not None:
            query["seq"] = {"$gt": before} if oldest_first else {"$lt": before, "$gte": 1}
        async with self._access.read():
            cursor = self._db.postings.find(query).sort(
                "seq", ASCENDING if oldest_first else DESCENDING
            )
            if limit is not None:
                cursor = cursor.limit(limit)
            docs = [doc async for doc in cursor]
            statuses = await self._transfer_statuses(docs)
        return [entry_of(doc, statuses) for doc in docs]

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        """Not rendered here: the presenter renders MongoDB's entries."""
        return None

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        async with self._access.read():
            doc = await self._db.postings.find_one(
                {"_id": posting_id(journal_id, account_id), "seq": {"$gte": 1}}
            )
            if doc is None:
                return None
            statuses = await self._transfer_statuses([doc])
        return entry_of(doc, statuses)

    async def _transfer_statuses(self, docs: list[Document]) -> dict[str, str]:
        """The status of the transfer behind each transfer_out entry among ``docs``."""
        references = {d["reference"] for d in docs if d["kind"] == JournalKind.TRANSFER_OUT.value}
        if not references:
            return {}
        return {
            t["_id"]: t["status"]
            async for t in self._db.transfers.find(
                {"_id": {"$in": sorted(references)}}, {"status": 1}
            )
        }
