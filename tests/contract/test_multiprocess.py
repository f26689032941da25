"""Several OS processes paying from one balance at once, through the real store.

This is the case the in-process write queue cannot serialise: on SQLite it exercises WAL, the
busy timeout and BEGIN IMMEDIATE; on PostgreSQL the guarded UPDATE's row lock.
"""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from dompet.domain.errors import InsufficientFunds
from dompet.domain.invariants import check
from dompet.domain.ledger import wallet_account
from dompet.storage import open_store
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, pay, top_up

PROCESSES, ATTEMPTS, PRICE, AFFORDABLE = 3, 40, 100, 50


def _pay_many(database_url: str, user_id: str, results: multiprocessing.Queue[int]) -> None:
    async def run() -> int:
        store = await open_store(database_url, mongodb_allow_standalone=True)
        succeeded = 0
        try:
            for _ in range(ATTEMPTS):
                try:
                    await pay(store, user_id, PRICE)
                    succeeded += 1
                except InsufficientFunds:
                    pass
        finally:
            await store.close()
        return succeeded

    results.put(asyncio.run(run()))


@pytest.mark.concurrency
async def test_processes_paying_from_one_balance(store: LedgerStore, database_url: str) -> None:
    user = await new_user(store)
    await top_up(store, user.id, AFFORDABLE * PRICE)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = context.Queue()
    workers = [
        context.Process(target=_pay_many, args=(database_url, user.id, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    counts = [await asyncio.to_thread(results.get, True, 120) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert sum(counts) == AFFORDABLE  # 120 attempts, exactly 50 affordable
    assert await store.balance(wallet_account(user.id)) == 0
    assert check(await store.snapshot()).ok
