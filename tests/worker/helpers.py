"""Shared by the worker tests: a burst of PENDING transfers, worker processes, ledger checks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from dompet.domain.ids import new_id
from dompet.domain.invariants import check
from dompet.domain.ledger import JournalKind, transfer_out_journal, wallet_account
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.storage.port import LedgerStore
from dompet.storage.sql.tables import journals, postings, transfers
from tests.contract.helpers import new_user, now, pending_transfer, top_up
from tests.support.sql import sql_connection

AMOUNT = 1_000


@dataclass
class Burst:
    transfers: list[Transfer]
    expected_credit: Counter[str] = field(default_factory=Counter)
    """target user id -> how many transfers it must be credited for."""


async def make_burst(
    store: LedgerStore, count: int, senders: int = 5, targets: int = 5, amount: int = AMOUNT
) -> Burst:
    """``count`` PENDING transfers (debited, not yet credited) between a few wallets."""
    from_users = [await new_user(store, "Sender") for _ in range(senders)]
    to_users = [await new_user(store, "Target") for _ in range(targets)]
    for user in from_users:
        await top_up(store, user.id, amount * count)
    burst = Burst(transfers=[])
    for i in range(count):
        sender, target = from_users[i % senders], to_users[i % targets]
        transfer = pending_transfer(sender.id, target.id, amount)
        journal = transfer_out_journal(
            new_id(), transfer.id, sender.id, amount, transfer.remarks, now()
        )
        await store.open_transfer(transfer, journal)
        burst.transfers.append(transfer)
        burst.expected_credit[target.id] += 1
    return burst


async def claimed_by(database_url: str, worker_id: str) -> int:
    """How many PENDING transfers the worker holds a claim on."""
    async with sql_connection(database_url) as conn:
        held: int = (
            await conn.execute(
                select(func.count())
                .select_from(transfers)
                .where(
                    transfers.c.claimed_by == worker_id,
                    transfers.c.status == TransferStatus.PENDING,
                )
            )
        ).scalar_one()
    return held


async def settlement_counts(database_url: str) -> Counter[str]:
    """transfer id -> number of settlement (credit) journals written for it."""
    async with sql_connection(database_url) as conn:
        rows = (
            await conn.execute(
                select(journals.c.reference, func.count())
                .select_from(journals.join(postings, postings.c.journal_id == journals.c.id))
                .where(
                    journals.c.kind == JournalKind.TRANSFER_SETTLE,
                    postings.c.amount > 0,
                    postings.c.account_id.like("wallet:%"),
                )
                .group_by(journals.c.reference)
            )
        ).all()
    return Counter({r[0]: int(r[1]) for r in rows})


async def assert_settled_exactly_once(store: LedgerStore, database_url: str, burst: Burst) -> None:
    for transfer in burst.transfers:
        got = await store.get_transfer(transfer.id)
        assert got is not None
        assert got.status is TransferStatus.SUCCESS, got
    credits = await settlement_counts(database_url)
    assert {t.id: credits[t.id] for t in burst.transfers} == {t.id: 1 for t in burst.transfers}
    for target_id, times in burst.expected_credit.items():
        assert await store.balance(wallet_account(target_id)) == times * AMOUNT
        history = await store.entries(wallet_account(target_id))
        assert sum(1 for e in history if e.entry_type == "CREDIT") == times
    report = check(await store.snapshot())
    assert report.ok, report.violations
    assert report.transit_balance == 0


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, limit: float = 90.0
) -> None:
    """Poll ``condition`` until true; fail (never pass) if it is not reached at all."""
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.01)


async def pending_count(store: LedgerStore) -> int:
    return (await store.transfer_counts())[TransferStatus.PENDING]


async def success_count(store: LedgerStore) -> int:
    return (await store.transfer_counts())[TransferStatus.SUCCESS]


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def worker_id(self) -> str:
        return f"worker-{socket.gethostname()}-{self.proc.pid}"

    async def running(self, store: LedgerStore) -> bool:
        """True once the process has recorded a heartbeat (its signal handlers are set)."""
        assert self.proc.poll() is None, self.log()
        marker = f"-{socket.gethostname()}-{self.proc.pid}"
        return any(marker in beat.worker_id for beat in await store.heartbeats())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_worker(
    database_url: str, log_dir: Path, *extra: str, **env_overrides: str
) -> WorkerProcess:
    """A real ``dompet worker`` OS process (python -m dompet.cli worker ...)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            "DATABASE_URL": database_url,
            "DOMPET_ENV": "test",
            "WORKER_SWEEP_SECONDS": "0.05",
            "WORKER_LEASE_SECONDS": "2",
            "WORKER_BATCH": "20",
            "WORKER_HEARTBEAT_SECONDS": "0.2",
            "SETTLE_RETRY_BASE_SECONDS": "0.05",
            "SETTLE_RETRY_MAX_SECONDS": "0.2",
            "PIN_HASH_TIME_COST": "1",
            "PIN_HASH_MEMORY_KIB": "1024",
            "PIN_HASH_PARALLELISM": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(env_overrides)
    log_path = log_dir / f"worker-{len(list(log_dir.glob('worker-*.log')))}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dompet.cli", "worker", *extra],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(proc, log_path)
