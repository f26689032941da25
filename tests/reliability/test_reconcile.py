"""``dompet reconcile``: exit 0 on a sound ledger, non-zero naming each corruption (every engine).

The ledger is corrupted with raw SQL (raw MongoDB writes on MongoDB), as a bug or a hand-edit
would, one invariant at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import WriteError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from dompet.cli import app as cli
from dompet.domain.ids import new_id
from dompet.domain.ledger import (
    payment_journal,
    settlement_journal,
    topup_journal,
    transfer_out_journal,
)
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage import engine_of, open_store
from tests.contract.helpers import new_user, now
from tests.reliability.live import reconcile_exit_code
from tests.support.sql import sql_connection


async def busy_ledger(database_url: str) -> dict[str, str]:
    """Top-ups, a payment, a settled and a pending transfer; returns ids to corrupt."""
    store = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        alice, bob = await new_user(store), await new_user(store)
        await store.post_journal(topup_journal(new_id(), alice.id, 10_000, now()))
        await store.post_journal(payment_journal(new_id(), alice.id, 1_000, "kopi", now()))
        pending = Transfer(
            id=new_id(),
            sender_id=alice.id,
            target_id=bob.id,
            amount=2_500,
            remarks="",
            status=TransferStatus.PENDING,
            created_at=now(),
        )
        await store.open_transfer(
            pending, transfer_out_journal(new_id(), pending.id, alice.id, 2_500, "", now())
        )
        settled = Transfer(
            id=new_id(),
            sender_id=alice.id,
            target_id=bob.id,
            amount=500,
            remarks="",
            status=TransferStatus.PENDING,
            created_at=now(),
        )
        await store.open_transfer(
            settled, transfer_out_journal(new_id(), settled.id, alice.id, 500, "", now())
        )
        credit = settlement_journal(new_id(), settled.id, bob.id, 500, "", now())
        assert await store.close_transfer(settled.id, TransferStatus.SUCCESS, credit, now())
        return {
            "alice": f"wallet:{alice.id}",
            "bob": f"wallet:{bob.id}",
            "transfer": pending.id,
            "settled": settled.id,
        }
    finally:
        await store.close()


async def run_sql(database_url: str, *statements: str, **params: str) -> None:
    async with sql_connection(database_url, begin=True) as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def reconcile(database_url: str) -> tuple[int, str]:
    """The CLI command, in-process (its own event loop, in a thread)."""
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "MONGODB_ALLOW_STANDALONE": "1"}  # nx-27017 only
    result = await asyncio.to_thread(runner.invoke, cli, ["reconcile"], env=env)
    return result.exit_code, result.output


async def _first_leg(db: AsyncDatabase[dict[str, Any]], account: str, last: bool = False) -> Any:
    doc = await db.postings.find_one(
        {"account_id": account, "seq": {"$gte": 1}}, sort=[("seq", -1 if last else 1)]
    )
    assert doc is not None
    return doc["_id"]


async def _mongo_corruption(
    name: str, db: AsyncDatabase[dict[str, Any]], ids: dict[str, str]
) -> None:
    """The same corruptions as CORRUPTIONS, made with raw MongoDB writes."""
    alice = ids["alice"]
    if name == "balance without postings":
        await db.accounts.update_one({"_id": alice}, {"$inc": {"balance": 7}})
    elif name == "posting amount changed":
        await db.postings.update_one({"_id": await _first_leg(db, alice)}, {"$inc": {"amount": 1}})
    elif name == "entry arithmetic broken":
        leg = await _first_leg(db, alice)
        await db.postings.update_one({"_id": leg}, {"$inc": {"balance_after": 3}})
    elif name == "chain broken":
        leg = await _first_leg(db, alice, last=True)
        await db.postings.update_one(
            {"_id": leg}, {"$inc": {"balance_before": 5, "balance_after": 5}}
        )
    elif name == "transfer flipped without settling":
        await db.transfers.update_one({"_id": ids["transfer"]}, {"$set": {"status": "SUCCESS"}})
    elif name == "posting deleted":
        await db.postings.delete_one({"account_id": "system:payments"})
    elif name == "transfer credited twice":
        settle = await db.journals.find_one(
            {"reference": ids["settled"], "kind": "transfer_settle"}
        )
        assert settle is not None
        await db.journals.insert_one({**settle, "_id": f"dup-{settle['_id']}"})
    elif name == "transfer debit journal relabelled":
        await db.journals.update_many({"reference": ids["transfer"]}, {"$set": {"kind": "payment"}})
    else:  # pragma: no cover
        raise AssertionError(name)


async def corrupt(database_url: str, name: str, ids: dict[str, str]) -> None:
    if engine_of(database_url) != "mongodb":
        statements, _expected = CORRUPTIONS[name]
        await run_sql(database_url, *statements, bob_or_alice=ids["alice"], **ids)
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
    try:
        await _mongo_corruption(name, client.get_default_database(), ids)
    finally:
        await client.close()


CORRUPTIONS: dict[str, tuple[list[str], str]] = {
    "balance without postings": (
        ["UPDATE accounts SET balance = balance + 7 WHERE id = :alice"],
        "balance 6007 != sum of its postings 6000",
    ),
    "posting amount changed": (
        [
            "UPDATE postings SET amount = amount + 1 WHERE id = "
            "(SELECT MIN(id) FROM postings WHERE account_id = :bob_or_alice)"
        ],
        "sum of all balances is 1, expected 0",
    ),
    "entry arithmetic broken": (
        [
            "UPDATE postings SET balance_after = balance_after + 3 WHERE id = "
            "(SELECT MIN(id) FROM postings WHERE account_id = :bob_or_alice)"
        ],
        "balance_after != balance_before + amount",
    ),
    "chain broken": (
        [
            "UPDATE postings SET balance_before = balance_before + 5, "
            "balance_after = balance_after + 5 WHERE id = "
            "(SELECT MAX(id) FROM postings WHERE account_id = :bob_or_alice)"
        ],
        "entries do not chain",
    ),
    "transfer flipped without settling": (
        ["UPDATE transfers SET status = 'SUCCESS' WHERE id = :transfer"],
        "transit balance 2500 != sum of PENDING transfers 0",
    ),
    "transfer credited twice": (
        [
            "INSERT INTO journals (id, kind, reference, remarks, created_at) "
            "SELECT 'dup-' || SUBSTR(id, 5), kind, reference, remarks, created_at FROM journals "
            "WHERE reference = :settled AND kind = 'transfer_settle'"
        ],
        "journals do not match its status",
    ),
    "transfer debit journal relabelled": (
        ["UPDATE journals SET kind = 'payment' WHERE reference = :transfer"],
        "journals do not match its status",
    ),
    "posting deleted": (
        [
            "DELETE FROM postings WHERE id = "
            "(SELECT MAX(id) FROM postings WHERE account_id = 'system:payments')"
        ],
        "does not sum to zero",
    ),
}


async def test_reconcile_passes_on_a_sound_ledger(database_url: str) -> None:
    await busy_ledger(database_url)
    code, output = await reconcile(database_url)
    assert code == 0, output
    assert "ledger OK" in output
    assert "in transit 2500" in output


@pytest.mark.parametrize("name", list(CORRUPTIONS))
async def test_reconcile_names_each_violation(database_url: str, name: str) -> None:
    ids = await busy_ledger(database_url)
    _statements, expected = CORRUPTIONS[name]
    await corrupt(database_url, name, ids)
    code, output = await reconcile(database_url)
    assert code == 1, output
    assert "VIOLATION" in output
    assert expected in " ".join(output.split()), output


async def test_the_database_itself_refuses_a_negative_balance(database_url: str) -> None:
    """Defence in depth: a CHECK constraint; and reconcile still reports one if it gets in."""
    ids = await busy_ledger(database_url)
    if engine_of(database_url) == "mongodb":
        await mongo_negative_balance(database_url, ids["bob"])
        code, output = await reconcile(database_url)
        assert code == 1
        assert "negative balance -5" in output
        return
    with pytest.raises(IntegrityError):
        await run_sql(database_url, "UPDATE accounts SET balance = -5 WHERE id = :bob", **ids)
    if "sqlite" in database_url:
        drop = "PRAGMA ignore_check_constraints = ON"
    else:
        drop = "ALTER TABLE accounts DROP CONSTRAINT ck_accounts_not_overdrawn"
    await run_sql(database_url, drop, "UPDATE accounts SET balance = -5 WHERE id = :bob", **ids)
    code, output = await reconcile(database_url)
    assert code == 1
    assert "negative balance -5" in output


async def test_the_database_itself_refuses_a_balance_above_the_cap(database_url: str) -> None:
    """Defence in depth behind the store's own refusal (BalanceLimitExceeded): no customer
    balance above 10^15 can be stored, whoever writes it (SQL engines: a CHECK)."""
    if engine_of(database_url) == "mongodb":
        pytest.skip(
            "MongoDB has no CHECK: its guarded update refuses (test_sessions_and_throttles.py) and "
            "its validator's maximum is sent (test_mongo_specific.py; enforced on a real server)"
        )
    ids = await busy_ledger(database_url)
    with pytest.raises(IntegrityError, match="ck_accounts_balance_cap"):
        await run_sql(
            database_url,
            "UPDATE accounts SET balance = 1000000000000001 WHERE id = :bob",
            **ids,
        )
    await run_sql(
        database_url, "UPDATE accounts SET balance = 1000000000000000 WHERE id = :bob", **ids
    )
    await run_sql(  # system accounts keep no customer balance: the cap is not theirs
        database_url, "UPDATE accounts SET balance = 2000000000000000 WHERE id = 'system:topup'"
    )


async def mongo_negative_balance(database_url: str, account: str) -> None:
    """The accounts validator (minimum 0) refuses it on a real server; bypass it to get one in.

    nx-27017 does not enforce validators, so there only the second half is exercised.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
    db = client.get_default_database()
    try:
        if "setName" in await client.admin.command("hello"):  # a real replica set
            with pytest.raises(WriteError):
                await db.accounts.update_one({"_id": account}, {"$set": {"balance": -5}})
        await db.accounts.update_one(
            {"_id": account}, {"$set": {"balance": -5}}, bypass_document_validation=True
        )
    finally:
        await client.close()


async def test_the_installed_command_exits_non_zero(sqlite_url: str) -> None:
    database_url = sqlite_url
    ids = await busy_ledger(database_url)
    assert (await asyncio.to_thread(reconcile_exit_code, database_url))[0] == 0
    await run_sql(
        database_url, "UPDATE transfers SET status = 'FAILED' WHERE id = :transfer", **ids
    )
    code, output = await asyncio.to_thread(reconcile_exit_code, database_url)
    assert code == 1, output
    assert "VIOLATION" in output
