"""The history read model: an account's entries, and its history pages rendered as JSON.

Every read is one statement, a Core select compiled once per shape and run on the driver
itself (``ConnectionAccess.fetch``: no SQLAlchemy result layer, which cost more than the
query). A page reads the posting rows alone, off the account index (``account_order.py``):
each posting carries its journal's kind, reference and remarks, and most carry their
history item too (``written.py``); the others' items are built by the query
(``rendered.py``). Where a read costs a round trip (PostgreSQL), the pages wanted at the
same moment go together, up to ``PAGE_BATCH_SIZE`` to a statement (``batched_reads.py``).
docs/read-path.md has the figures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, select

from dompet.domain.history import ItemLayout
from dompet.domain.ledger import Entry, EntryStatus, EntryType, JournalKind
from dompet.storage.port import RenderedItems
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.account_order import account_slice
from dompet.storage.sql.history.batched_reads import ReadBatcher
from dompet.storage.sql.history.rendered import (
    entries_from,
    entry_status,
    rendered_page,
    rendered_pages,
)
from dompet.storage.sql.history.written import layout_fingerprint
from dompet.storage.sql.tables import Money, postings

PAGE_BATCHES = 2
"""PostgreSQL: history page batches in flight at once (each on its own connection). Two: one
runs in the database while the API answers the other. Eight (stop 17) had up to eight server
processes taking turns on the same cores, and every caller of a preempted batch waited with
it: 9,300-9,600 pages/s at p99 10-12 ms against 11,600-12,100 at 8 ms with two (64
connections; BENCHMARKS.md, stop 18)."""
PAGE_BATCH_SIZE = 12
"""PostgreSQL: history pages in one batch at most. Two batches of 8-16 served about the same;
of 32 or 64 one statement ran for milliseconds and stretched the p99 (BENCHMARKS.md)."""

PageWanted = tuple[str, str, int | None]
"""A history page ``render_entries`` was asked for: account, user, and cursor (before)."""
PageBatches = ReadBatcher[tuple[ItemLayout, int], PageWanted, RenderedItems | None]


class HistoryReads:
    """``entries``, ``render_entries`` and ``entry_of_journal`` of the storage port."""

    def __init__(self, access: ConnectionAccess, batched: bool) -> None:
        """``batched``: read concurrent pages together (where a read is a round trip)."""
        self._access = access
        self._engine = access.engine_name
        self._compiled = access.compiled
        self._fetch = access.fetch
        self._utc = access.utc
        self._batches: PageBatches | None = (
            ReadBatcher(self._rendered_pages, in_flight=PAGE_BATCHES, most=PAGE_BATCH_SIZE)
            if batched
            else None
        )

    async def close(self) -> None:
        if self._batches is not None:
            await self._batches.close()

    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        page = self._compiled(
            entries_page, self._engine, before is not None, oldest_first, limit is not None
        )
        rows = await self._fetch(page, page_params(account_id, limit, before))
        return _entries(rows, account_id, self._utc)

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        if self._batches is not None and limit is not None:
            return await self._batches.read((layout, limit), (account_id, user_id, before))
        return await self._rendered_page(layout, limit, (account_id, user_id, before))

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        query = self._compiled(_journal_entry_query)
        rows = await self._fetch(query, {"journal_id": journal_id, "account_id": account_id})
        return _entries(rows, account_id, self._utc)[0] if rows else None

    async def _rendered_page(
        self, layout: ItemLayout, limit: int | None, page: PageWanted
    ) -> RenderedItems | None:
        """One history page (or all of it), one statement."""
        account_id, user_id, before = page
        query = self._compiled(
            rendered_page, layout, self._engine, before is not None, limit is not None
        )
        params = page_params(
            account_id, limit, before, user_id=user_id, item_layout=layout_fingerprint(layout)
        )
        rows = await self._fetch(query, params)
        items = [row[1] for row in rows]
        if None in items:  # an entry dated outside DISPLAY_RANGE
            return None
        body = ("[" + ",".join(items) + "]").encode()
        return RenderedItems(body, len(rows), rows[-1][0] if rows else None)

    async def _rendered_pages(
        self, shape: tuple[ItemLayout, int], pages: list[PageWanted]
    ) -> list[RenderedItems | None]:
        """PostgreSQL: the pages of one layout and size that ``render_entries`` was asked for
        at the same time, in one statement (``batched_reads.py``); a page alone as above."""
        layout, limit = shape
        if len(pages) == 1:
            return [await self._rendered_page(layout, limit, pages[0])]
        account_ids, user_ids, befores = zip(*pages, strict=True)
        params = {
            "account_ids": list(account_ids),
            "user_ids": list(user_ids),
            "befores": list(befores),
            "limit": limit,
            "item_layout": layout_fingerprint(layout),
        }
        rows = await self._fetch(self._compiled(rendered_pages, layout), params)
        by_page = {row[0]: row for row in rows}
        return [_rendered(by_page[number]) for number in range(1, len(pages) + 1)]


def _entries_query() -> Any:
    status = entry_status().label("status")
    return select(  # not the account: the caller names it
        postings.c.id,
        postings.c.journal_id,
        postings.c.kind,
        postings.c.reference,
        postings.c.amount,
        postings.c.balance_before,
        postings.c.balance_after,
        postings.c.remarks,
        postings.c.created_at,
        status,
    ).select_from(entries_from())


@functools.cache
def entries_page(engine_name: str, before: bool, oldest_first: bool, limited: bool) -> Any:
    """An account's entries query, built once per engine and shape (bound :account_id,
    :before, :limit)."""
    cursor = bindparam("before", type_=Money) if before else None
    where, order = account_slice(
        engine_name, bindparam("account_id"), cursor, oldest_first=oldest_first, limited=limited
    )
    query = _entries_query().where(where).order_by(*order)
    if limited:
        query = query.limit(bindparam("limit", type_=Integer))
    return query


def page_params(
    account_id: str, limit: int | None, before: int | None, **more: Any
) -> dict[str, Any]:
    """The bound values of a page query (``entries_page``, ``rendered_page``)."""
    params: dict[str, Any] = {"account_id": account_id, **more}
    if before is not None:
        params["before"] = before
    if limit is not None:
        params["limit"] = limit
    return params


def _journal_entry_query() -> Any:
    return _entries_query().where(
        postings.c.journal_id == bindparam("journal_id"),
        postings.c.account_id == bindparam("account_id"),
    )


def _rendered(row: Sequence[Any]) -> RenderedItems | None:
    """A row of ``rendered_pages`` as the page; None if an entry has no item (its date)."""
    _, body, rendered, size, last = row
    if rendered < size:
        return None
    return RenderedItems(("[" + (body or "") + "]").encode(), size, last)


_KINDS = {kind.value: kind for kind in JournalKind}
_STATUSES = {status.value: status for status in EntryStatus}


def _entries(
    rows: Sequence[Sequence[Any]], account_id: str, utc: Callable[[Any], datetime]
) -> list[Entry]:
    """Rows of :func:`_entries_query` as entries; a comprehension, the history's hot loop."""
    kinds, statuses, success = _KINDS, _STATUSES, EntryStatus.SUCCESS
    credit, debit = EntryType.CREDIT, EntryType.DEBIT
    return [
        Entry(
            row[0],  # sequence
            account_id,
            row[1],  # journal_id
            kinds[row[2]],
            row[3],  # reference
            row[4] if row[4] > 0 else -row[4],
            credit if row[4] > 0 else debit,
            row[5],  # balance_before
            row[6],  # balance_after
            row[7],  # remarks
            utc(row[8]),
            statuses[row[9]] if row[9] else success,
        )
        for row in rows
    ]
