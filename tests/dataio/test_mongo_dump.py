"""A ledger written on MongoDB dumps into a folder that loads into SQLite as the same ledger."""

from __future__ import annotations

from pathlib import Path

from dompet.dataio.folder import dump, load
from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import transfer_out_journal, wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, now, pay, pending_transfer, top_up


async def test_a_mongodb_ledger_dumps_and_loads_into_sqlite(mongo_url: str, tmp_path: Path) -> None:
    await migrate(mongo_url, mongodb_allow_standalone=True)
    mongo: LedgerStore = await open_store(mongo_url, mongodb_allow_standalone=True)
    try:
        alice, bob = await new_user(mongo), await new_user(mongo, "Bob")
        await top_up(mongo, alice.id, 5000)
        await top_up(mongo, bob.id, 700)
        await pay(mongo, alice.id, 1200, "Pulsa")
        transfer = pending_transfer(alice.id, bob.id, 300)
        await mongo.open_transfer(
            transfer, transfer_out_journal(new_id(), transfer.id, alice.id, 300, "", now())
        )
        await pay(mongo, bob.id, 100)
        histories = {
            u.id: await mongo.entries(wallet_account(u.id), oldest_first=True) for u in (alice, bob)
        }
        manifest = await dump(mongo, tmp_path / "dump")
    finally:
        await mongo.close()

    sqlite_url = f"sqlite:///{tmp_path / 'copy.db'}"
    await migrate(sqlite_url)
    copy = await open_store(sqlite_url)
    try:
        report = await load(copy, tmp_path / "dump")
        assert report.ok, report.violations
        for user_id, history in histories.items():
            loaded = await copy.entries(wallet_account(user_id), oldest_first=True)
            assert [(e.journal_id, e.amount, e.balance_after, e.status) for e in loaded] == [
                (e.journal_id, e.amount, e.balance_after, e.status) for e in history
            ]
        assert await dump(copy, tmp_path / "again") == manifest
        assert check(await copy.snapshot()).ok
    finally:
        await copy.close()
