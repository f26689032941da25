"""Small builders shared by the store contract tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from dompet.domain.ids import new_id
from dompet.domain.ledger import Entry, payment_journal, topup_journal
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import User
from dompet.storage.port import LedgerStore
from dompet.storage.sql.access.group_commit import GroupCommitWriter

_phone = iter(range(10**9))


def now() -> datetime:
    return datetime.now(UTC)


def next_phone() -> str:
    return f"0812{next(_phone):08d}"


async def new_user(store: LedgerStore, first_name: str = "Guntur") -> User:
    moment = now()
    user = User(
        id=new_id(),
        first_name=first_name,
        last_name="Saputro",
        phone_number=next_phone(),
        address="Jl. Kebon Sirih No. 1",
        created_at=moment,
        updated_at=moment,
    )
    await store.add_user(user, "argon2-hash-placeholder")
    return user


async def top_up(store: LedgerStore, user_id: str, amount: int) -> Entry:
    (entry,) = await store.post_journal(topup_journal(new_id(), user_id, amount, now()))
    return entry


async def pay(store: LedgerStore, user_id: str, amount: int, remarks: str = "") -> Entry:
    (entry,) = await store.post_journal(payment_journal(new_id(), user_id, amount, remarks, now()))
    return entry


def pending_transfer(sender_id: str, target_id: str, amount: int) -> Transfer:
    return Transfer(
        id=new_id(),
        sender_id=sender_id,
        target_id=target_id,
        amount=amount,
        remarks="Hadiah Ultah",
        status=TransferStatus.PENDING,
        created_at=now(),
    )


async def hold_the_turn(writer: GroupCommitWriter) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A caller's transaction that holds SQLite's shared writer until the event is set, so
    that what is asked for meanwhile queues (returns once it holds the turn)."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with writer.transaction():
            holding.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    return task, release
