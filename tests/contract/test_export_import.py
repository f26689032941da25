"""The whole-database port methods (is_empty, export_records, import_records) on every engine."""

from __future__ import annotations

from dompet.domain.records import RECORD_KINDS, AccountRecord, JournalRecord, kind_of
from dompet.domain.transfers import TransferStatus
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, top_up


async def test_a_migrated_database_is_empty_and_exports_nothing(store: LedgerStore) -> None:
    assert await store.is_empty()
    assert [record async for record in store.export_records()] == []


async def test_export_then_import_into_another_database_is_the_same_ledger(
    store: LedgerStore, database_url: str
) -> None:
    guntur = await new_user(store)
    await top_up(store, guntur.id, 500000)
    assert not await store.is_empty()
    records = [record async for record in store.export_records()]
    kinds = [kind_of(record) for record in records]
    assert kinds == sorted(kinds, key=RECORD_KINDS.index)
    assert {"accounts", "users", "journals"} <= set(kinds)
    assert not any(isinstance(r, AccountRecord) and r.id.startswith("system:") for r in records)

    # Importing what is already there fails as a whole, writing nothing.
    try:
        await store.import_records(records)
    except ValueError:
        pass
    else:  # pragma: no cover - the test fails here
        raise AssertionError("a duplicate import was accepted")
    assert [r async for r in store.export_records()] == records


async def test_imported_postings_keep_their_sequences_and_new_ones_follow(
    store: LedgerStore,
) -> None:
    from dompet.domain.ledger import JournalKind, wallet_account
    from dompet.domain.records import PostingRecord
    from dompet.domain.transfers import Transfer
    from tests.contract.helpers import now

    # Build records by hand: one user with an account, a top-up journal at sequence 1000.
    guntur = await new_user(store)
    moment = now()
    journal = JournalRecord(
        id="0190c0de-0000-7000-8000-000000000001",
        kind=JournalKind.TOPUP,
        reference="0190c0de-0000-7000-8000-000000000001",
        remarks="",
        created_at=moment,
        postings=(
            PostingRecord(1000, wallet_account(guntur.id), 700, 0, 700, moment),
            PostingRecord(1001, "system:topup", -700, None, None, moment),
        ),
    )
    await store.import_records([journal])
    entries = await store.entries(wallet_account(guntur.id))
    assert [(e.sequence, e.amount) for e in entries] == [(1000, 700)]
    transfer = Transfer(
        id="0190c0de-0000-7000-8000-000000000002",
        sender_id=guntur.id,
        target_id=guntur.id,
        amount=1,
        remarks="",
        status=TransferStatus.SUCCESS,
        created_at=moment,
        settled_at=moment,
        next_attempt_at=moment,
    )
    await store.import_records([transfer])
    assert await store.get_transfer(transfer.id) == transfer
    # The balance was not touched by the journal import (balances come from AccountRecords).
    assert await store.balance(wallet_account(guntur.id)) == 0
    later = await top_up(store, guntur.id, 5)
    assert later.sequence > 1001
