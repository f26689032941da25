"""``dompet reconcile``: exit 0 on a sound ledger, non-zero naming each corruption (every engine).

The ledger is corrupted with raw SQL, as a bug or a hand-edit would, one invariant at a time.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from dompet.cli import app as cli
from dompet.domain.ids import new_id
from dompet.domain.ledger import payment_journal, topup_journal, transfer_out_journal
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage import open_store
from dompet.storage.sql.engine import create_engines
from tests.contract.helpers import new_user, now
from tests.reliability.live import reconcile_exit_code


async def busy_ledger(database_url: str) -> dict[str, str]:
    """Top-ups, a payment, a settled and a pending transfer; returns ids to corrupt."""
    store = await open_store(database_url)
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
        return {"alice": f"wallet:{alice.id}", "bob": f"wallet:{bob.id}", "transfer": pending.id}
    finally:
        await store.close()


async def run_sql(database_url: str, *statements: str, **params: str) -> None:
    writer, _reader = create_engines(database_url)
    try:
        async with writer.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement), params)
    finally:
        await writer.dispose()


async def reconcile(database_url: str) -> tuple[int, str]:
    """The CLI command, in-process (its own event loop, in a thread)."""
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli, ["reconcile"], env={"DATABASE_URL": database_url}
    )
    return result.exit_code, result.output


CORRUPTIONS: dict[str, tuple[list[str], str]] = {
    "balance without postings": (
        ["UPDATE accounts SET balance = balance + 7 WHERE id = :alice"],
        "balance 6507 != sum of its postings 6500",
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
    statements, expected = CORRUPTIONS[name]
    await run_sql(database_url, *statements, bob_or_alice=ids["alice"], **ids)
    code, output = await reconcile(database_url)
    assert code == 1, output
    assert "VIOLATION" in output
    assert expected in " ".join(output.split()), output


async def test_the_database_itself_refuses_a_negative_balance(database_url: str) -> None:
    """Defence in depth: a CHECK constraint; and reconcile still reports one if it gets in."""
    ids = await busy_ledger(database_url)
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
