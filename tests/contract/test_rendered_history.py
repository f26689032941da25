"""History items rendered by the database equal the presenter's, byte for byte.

``SqlStore.render_entries`` builds GET /transactions' items in SQL (docs/read-path.md); the
presenter (``WalletPresenter.transactions`` + orjson) is the reference. Both run on one ledger
with every kind of entry and status, remarks that need JSON escaping, the largest amounts,
and times on the edges of a second and of a day, for several display zones.
MongoDB does not render (``render_entries`` is None) and is presented by the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import update

from dompet.api.presenters import WalletPresenter, fixed_utc_offset, history_layout
from dompet.domain.history import ItemField, ItemLayout
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import (
    payment_journal,
    refund_journal,
    settlement_journal,
    topup_journal,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.money import MAX_AMOUNT
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import User
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore, RenderedItems
from dompet.storage.sql.history.rendered import rendered_pages
from dompet.storage.sql.store import SqlStore
from dompet.storage.sql.tables import postings
from tests.contract.helpers import new_user
from tests.support.sql import sql_connection

REMARKS = [
    'quote " and backslash \\ and slash /',
    "new\nline, tab\t, return\r, bell\x07, escape\x1b, unit separator\x1f, nul-free",
    "backspace\b form feed\f delete\x7f",
    "Rupiah é ü ñ 日本語 🙂 𝄞",
    "line separator\u2028 paragraph separator\u2029",
    '{"looks": ["like", "json"]}',
    "</script><b>html</b>&amp;",
    "x" * 500,
    "",
]

BASE = datetime(2026, 3, 31, 16, 59, 59, 999999, tzinfo=UTC)
"""23:59:59.999999 in Jakarta: the display must not round into the next day."""


@dataclass
class Ledger:
    sender: User
    target: User


async def _ledger(store: LedgerStore) -> Ledger:
    sender, target = await new_user(store, "Sender"), await new_user(store, "Target")
    moments = iter(BASE + timedelta(seconds=step, microseconds=-step) for step in range(10**6))

    for _ in range(len(REMARKS) + 1):
        await store.post_journal(topup_journal(new_id(), sender.id, MAX_AMOUNT, next(moments)))
    for remarks in REMARKS:
        await store.post_journal(
            payment_journal(new_id(), sender.id, MAX_AMOUNT - 1, remarks, next(moments))
        )
    await store.post_journal(payment_journal(new_id(), sender.id, 1, "one", BASE.replace(hour=0)))
    for outcome in (TransferStatus.PENDING, TransferStatus.SUCCESS, TransferStatus.FAILED):
        at = next(moments)
        transfer = Transfer(
            id=new_id(),
            sender_id=sender.id,
            target_id=target.id,
            amount=12_345,
            remarks=f'transfer {outcome.value} "quoted"',
            status=TransferStatus.PENDING,
            created_at=at,
        )
        await store.open_transfer(
            transfer,
            transfer_out_journal(
                new_id(), transfer.id, sender.id, transfer.amount, transfer.remarks, at
            ),
        )
        closing = {
            TransferStatus.SUCCESS: settlement_journal(
                new_id(), transfer.id, target.id, transfer.amount, transfer.remarks, at
            ),
            TransferStatus.FAILED: refund_journal(
                new_id(), transfer.id, sender.id, transfer.amount, transfer.remarks, at
            ),
        }.get(outcome)
        if closing is not None:
            assert await store.close_transfer(transfer.id, outcome, closing, next(moments))
    return Ledger(sender, target)


async def _assert_same(
    store: LedgerStore,
    presenter: WalletPresenter,
    user: User,
    limit: int | None = None,
    before: int | None = None,
) -> int | None:
    """One page both ways; returns the rendered page's next cursor (None on the last)."""
    layout = presenter.item_layout
    assert layout is not None
    account = wallet_account(user.id)
    entries = await store.entries(account, limit=limit, before=before)
    expected = orjson.dumps(presenter.transactions(entries, user.id))
    rendered = await store.render_entries(account, user.id, layout, limit=limit, before=before)
    if store.engine_name == "mongodb":
        assert rendered is None
        return None
    assert rendered is not None
    assert rendered.body == expected
    assert rendered.size == len(entries)
    assert rendered.last_sequence == (entries[-1].sequence if entries else None)
    return rendered.last_sequence


@asynccontextmanager
async def _store_writing_in(database_url: str, zone: str | None) -> AsyncIterator[LedgerStore]:
    """A store that renders items as it writes entries, in ``zone``'s layout (None: never)."""
    layout = history_layout(ZoneInfo(zone)) if zone else None
    store = await open_store(database_url, history_layout=layout, mongodb_allow_standalone=True)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("written_in", ["nothing", "the same zone", "Asia/Jakarta"])
@pytest.mark.parametrize(
    "zone", ["Asia/Jakarta", "UTC", "Asia/Kolkata", "America/Panama", "Asia/Jayapura"]
)
async def test_rendered_items_equal_the_presenters(
    database_url: str, zone: str, written_in: str
) -> None:
    """Items rendered when read (written in no layout, or in Jakarta's and read in another
    zone) and items rendered when written (in the zone they are read in) are the
    presenter's."""
    writing = {"nothing": None, "the same zone": zone}.get(written_in, written_in)
    async with _store_writing_in(database_url, writing) as store:
        await _assert_pages_equal(store, WalletPresenter(ZoneInfo(zone)))


async def _assert_pages_equal(store: LedgerStore, presenter: WalletPresenter) -> None:
    ledger = await _ledger(store)
    for user in (ledger.sender, ledger.target):
        await _assert_same(store, presenter, user)  # the full list
        for limit in (1, 2, 3, 50):
            cursor = await _assert_same(store, presenter, user, limit=limit)
            while cursor is not None:
                cursor = await _assert_same(store, presenter, user, limit=limit, before=cursor)
    await _assert_same(store, presenter, ledger.sender, limit=5, before=1)  # nothing older
    stranger = await new_user(store, "Stranger")
    await _assert_same(store, presenter, stranger)  # no entries: []
    assert check(await store.snapshot()).ok  # stored items are what their entries render to


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"], indirect=True)
async def test_pages_read_at_once_are_the_pages_read_one_by_one(database_url: str) -> None:
    """Many pages wanted at the same moment (PostgreSQL reads them in batches of
    ``PAGE_BATCH_SIZE``, one statement each: ``rendered_pages``) are each the page read alone:
    pages of both users at every cursor, sizes that do not share a batch, a page with
    nothing older, a user with no entries, and one with an entry the store declines."""
    presenter = WalletPresenter(ZoneInfo("Asia/Jakarta"))
    layout = presenter.item_layout
    assert layout is not None
    async with _store_writing_in(database_url, "Asia/Jakarta") as store:
        ledger = await _ledger(store)
        stranger = await new_user(store, "Stranger")
        declined = await new_user(store, "Declined")
        await store.post_journal(
            topup_journal(new_id(), declined.id, 7, datetime(1963, 6, 1, tzinfo=UTC))
        )
        await store.post_journal(topup_journal(new_id(), declined.id, 5, datetime.now(UTC)))
        wanted: list[tuple[User, int, int | None]] = [(stranger, 3, None), (declined, 2, None)]
        wanted += [(declined, 1, None), (ledger.sender, 5, 1)]
        for user in (ledger.sender, ledger.target):
            for limit in (2, 3):
                cursor = None
                while True:
                    wanted.append((user, limit, cursor))
                    alone = await _assert_same(store, presenter, user, limit, cursor)
                    if alone is None:
                        break
                    cursor = alone

        def read(user: User, limit: int, before: int | None) -> Awaitable[RenderedItems | None]:
            account = wallet_account(user.id)
            return store.render_entries(account, user.id, layout, limit=limit, before=before)

        one_by_one = [await read(*page) for page in wanted]
        at_once = await asyncio.gather(*(read(*page) for page in wanted))
        assert at_once == one_by_one
        assert one_by_one[0] == RenderedItems(b"[]", 0, None)
        assert one_by_one[1] is None  # its older entry is dated outside DISPLAY_RANGE
        assert one_by_one[2] is not None
        assert one_by_one[2].size == 1
        if store.engine_name == "postgresql":  # the batches' own statement ran
            assert isinstance(store, SqlStore)
            assert any(key[0] is rendered_pages for key in store.access.compiled.built)


@pytest.mark.parametrize("written_in", [None, "Asia/Jakarta"])
async def test_an_entry_dated_outside_the_display_range_is_not_rendered(
    database_url: str, written_in: str | None
) -> None:
    """Jakarta was UTC+7:30 in 1963: the store declines and the presenter shows it."""
    presenter = WalletPresenter(ZoneInfo("Asia/Jakarta"))
    layout = presenter.item_layout
    assert layout is not None
    async with _store_writing_in(database_url, written_in) as store:
        user = await new_user(store)
        old = datetime(1963, 6, 1, 12, tzinfo=UTC)
        await store.post_journal(topup_journal(new_id(), user.id, 7, old))
        await store.post_journal(topup_journal(new_id(), user.id, 5, datetime.now(UTC)))
        account = wallet_account(user.id)
        assert await store.render_entries(account, user.id, layout) is None
        newest = await store.render_entries(account, user.id, layout, limit=1)
        if store.engine_name != "mongodb":
            assert newest is not None  # the page without the old entry
            assert newest.size == 1
        entries = await store.entries(account)
    assert presenter.transactions(entries, user.id)[1]["created_date"] == "1963-06-01 19:30:00"


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"], indirect=True)
async def test_a_page_reads_back_the_items_written_in_its_layout(database_url: str) -> None:
    """The stored text is what a page in the same layout serves, and only such a page: an
    item changed in the database shows in Jakarta, not in UTC (rendered again there).
    (The SQL engines: MongoDB does not render items, the API presents its entries.)"""
    jakarta = history_layout(ZoneInfo("Asia/Jakarta"))
    utc = history_layout(ZoneInfo("UTC"))
    assert jakarta is not None
    assert utc is not None
    async with _store_writing_in(database_url, "Asia/Jakarta") as store:
        user = await new_user(store)
        at = datetime(2026, 5, 1, 1, 2, 3, tzinfo=UTC)
        await store.post_journal(topup_journal(new_id(), user.id, 10, at))
        await store.post_journal(payment_journal(new_id(), user.id, 4, "kopi", at))
        assert check(await store.snapshot()).ok
    # the two wallet entries; not the system postings
    assert await _tamper_with_items(database_url, '{"tampered":true}') == 2
    async with _store_writing_in(database_url, None) as store:
        account = wallet_account(user.id)
        in_jakarta = await store.render_entries(account, user.id, jakarta)
        in_utc = await store.render_entries(account, user.id, utc)
        assert check(await store.snapshot()).ok  # checks only the items of its own layout
    async with _store_writing_in(database_url, "Asia/Jakarta") as store:  # dompet reconcile
        sequences = [entry.sequence for entry in await store.entries(account)]
        report = check(await store.snapshot())
    assert report.violations == [
        f"entry {sequence}: its stored history item differs from the entry"
        for sequence in sorted(sequences)
    ]
    assert in_jakarta is not None
    assert in_utc is not None
    assert in_jakarta.body == b'[{"tampered":true},{"tampered":true}]'
    items = orjson.loads(in_utc.body)
    assert [item["created_date"] for item in items] == ["2026-05-01 01:02:03"] * 2
    assert [item["amount"] for item in items] == [4, 10]


async def _tamper_with_items(database_url: str, text: str) -> int:
    """Overwrite every stored history item (only a test does this); how many there were."""
    async with sql_connection(database_url, begin=True) as conn:
        changed = await conn.execute(
            update(postings).where(postings.c.item.is_not(None)).values(item=text)
        )
    return changed.rowcount


def test_only_zones_of_one_offset_are_rendered_by_the_store() -> None:
    assert fixed_utc_offset(ZoneInfo("Asia/Jakarta")) == 7 * 3600
    assert fixed_utc_offset(ZoneInfo("Asia/Kolkata")) == 5 * 3600 + 1800
    assert fixed_utc_offset(ZoneInfo("America/Panama")) == -5 * 3600
    assert fixed_utc_offset(ZoneInfo("UTC")) == 0
    for seasonal in ("Europe/Berlin", "America/New_York", "Australia/Sydney"):
        assert fixed_utc_offset(ZoneInfo(seasonal)) is None
        assert WalletPresenter(ZoneInfo(seasonal)).item_layout is None
    assert fixed_utc_offset(ZoneInfo("Pacific/Apia")) is None  # skipped 2011-12-30
    assert fixed_utc_offset(ZoneInfo("Asia/Kathmandu")) is None  # +5:30 -> +5:45 in 1986


def test_item_keys_must_be_plain_names() -> None:
    """Keys go into the SQL text as they are: only [a-z_]+ is accepted."""
    for key in ('a"b', "a'b", "A", "", "a b"):
        with pytest.raises(ValueError, match="plain name"):
            ItemLayout((), ((ItemField.STATUS, key),), 0)


async def test_imported_entries_get_their_items_as_written(
    database_url: str, engine_name: str, tmp_path: Path
) -> None:
    """``import_records`` renders items as the journal writers do: a ledger built on a scratch
    SQLite database, imported here by a store writing in Jakarta, pages as the presenter."""
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    await migrate(scratch)
    async with _store_writing_in(scratch, None) as source:
        ledger = await _ledger(source)
        records = [record async for record in source.export_records()]
    presenter = WalletPresenter(ZoneInfo("Asia/Jakarta"))
    async with _store_writing_in(database_url, "Asia/Jakarta") as store:
        await store.import_records(records)
        for user in (ledger.sender, ledger.target):
            await _assert_same(store, presenter, user)
            await _assert_same(store, presenter, user, limit=3)
    if engine_name != "mongodb":
        stored = await _tamper_with_items(database_url, '{"tampered":true}')
        top_ups, payments, credits = len(REMARKS) + 1, len(REMARKS) + 1, 2  # settle, refund
        assert stored == top_ups + payments + credits  # every wallet entry but the 3 debits
