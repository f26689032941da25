"""`dompet create-operator`, `block-account` / `unblock-account` on a real SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from dompet.cli import app
from dompet.domain.errors import AccountBlocked
from dompet.domain.ledger import wallet_account
from dompet.storage import migrate, open_store
from dompet.storage.sql.migrate import upgrade_sync
from tests.contract.helpers import new_user, top_up

ENV = {
    "PIN_HASH_TIME_COST": "1",
    "PIN_HASH_MEMORY_KIB": "1024",
    "PIN_HASH_PARALLELISM": "1",
}


def test_create_operator_from_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    upgrade_sync(url)
    runner = CliRunner()
    env = {**ENV, "DATABASE_URL": url}
    made = runner.invoke(
        app, ["create-operator", "Rina", "--password-stdin"], input="a-very-long-secret\n", env=env
    )
    assert made.exit_code == 0, made.output
    assert "operator rina created" in made.output
    again = runner.invoke(
        app, ["create-operator", "rina", "--password-stdin"], input="another-long-one\n", env=env
    )
    assert again.exit_code == 1
    assert "already exists" in again.output
    short = runner.invoke(
        app, ["create-operator", "budi", "--password-stdin"], input="short\n", env=env
    )
    assert short.exit_code == 1
    assert "at least 12" in short.output

    async def stored() -> str | None:
        store = await open_store(url)
        try:
            operator = await store.find_operator("rina")
            return operator.password_hash if operator else None
        finally:
            await store.close()

    password_hash = asyncio.run(stored())
    assert password_hash is not None
    assert password_hash.startswith("$argon2id$")


def test_block_and_unblock_account(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    asyncio.run(migrate(url))
    runner = CliRunner()
    env = {**ENV, "DATABASE_URL": url}
    missing = runner.invoke(app, ["block-account", "wallet:nobody"], env=env)
    assert missing.exit_code == 1
    assert "no customer account" in missing.output

    async def user_account() -> str:
        store = await open_store(url)
        try:
            return wallet_account((await new_user(store)).id)
        finally:
            await store.close()

    account = asyncio.run(user_account())
    blocked = runner.invoke(app, ["block-account", account], env=env)
    assert blocked.exit_code == 0, blocked.output

    async def top_up_refused() -> bool:
        store = await open_store(url)
        try:
            await top_up(store, account.removeprefix("wallet:"), 100)
        except AccountBlocked:
            return True
        finally:
            await store.close()
        return False

    assert asyncio.run(top_up_refused())
    unblocked = runner.invoke(app, ["unblock-account", account], env=env)
    assert unblocked.exit_code == 0, unblocked.output
    assert not asyncio.run(top_up_refused())


def test_remove_operator_removes_them_and_ends_their_sessions(tmp_path: Path) -> None:
    from dompet.domain.ids import new_id
    from dompet.domain.sessions import SessionRecord, operator_subject
    from tests.contract.helpers import now

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    upgrade_sync(url)
    runner = CliRunner()
    env = {**ENV, "DATABASE_URL": url}
    made = runner.invoke(
        app, ["create-operator", "rina", "--password-stdin"], input="a-very-long-secret\n", env=env
    )
    assert made.exit_code == 0, made.output
    session = SessionRecord(new_id(), operator_subject("rina"), None, now(), now())

    async def open_one() -> None:
        store = await open_store(url)
        try:
            await store.open_session(session)
        finally:
            await store.close()

    async def live() -> tuple[bool, bool]:
        store = await open_store(url)
        try:
            still = await store.session_live(session.id, session.subject)
            return still, await store.find_operator("rina") is not None
        finally:
            await store.close()

    asyncio.run(open_one())
    assert asyncio.run(live()) == (True, True)
    removed = runner.invoke(app, ["remove-operator", "Rina"], env=env)
    assert removed.exit_code == 0, removed.output
    assert "operator rina removed" in removed.output
    assert asyncio.run(live()) == (False, False)
    again = runner.invoke(app, ["remove-operator", "rina"], env=env)
    assert again.exit_code == 1
    assert "no operator rina" in again.output
