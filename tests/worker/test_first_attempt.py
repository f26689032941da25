"""The in-process worker tries each accepted transfer at once, without a claim or a batch.

Transfers are accepted by an API without a worker (DOMPET_WORKER=0), so they wait PENDING; a
SettlementWorker whose claim loop never runs is then handed them through ``settle_soon``.
"""

from __future__ import annotations

import asyncio

import httpx

from dompet.container import Container, worker_config
from dompet.domain.invariants import check
from dompet.domain.ledger import wallet_account
from dompet.domain.transfers import TransferStatus
from dompet.worker.inprocess import SettlementWorker, WakeDispatcher
from tests.api.wallet_client import Wallet, register
from tests.conftest import AsyncClientContext, fast_settings


async def _pending_transfers(
    http: httpx.AsyncClient, count: int
) -> tuple[Wallet, Wallet, list[str]]:
    sender = await register(http, "Sender")
    target = await register(http, "Target")
    assert (await sender.topup(100_000)).status_code == 200
    sent = await asyncio.gather(*(sender.transfer(target.user_id, 1_000) for _ in range(count)))
    assert all(r.status_code == 200 for r in sent), [r.text for r in sent]
    return sender, target, [r.json()["result"]["transfer_id"] for r in sent]


def _idle_worker(container: Container) -> tuple[SettlementWorker, asyncio.Event]:
    wake = asyncio.Event()
    worker = SettlementWorker(
        container.store,
        container.settlement,
        container.clock,
        worker_config(container.settings, "test"),
        wake,
    )
    return worker, wake


async def test_settle_soon_credits_each_transfer_once_without_a_claim(database_url: str) -> None:
    context = AsyncClientContext(fast_settings(database_url, worker_enabled=False))
    async with context as http:
        assert context.container is not None
        store = context.container.store
        _sender, target, ids = await _pending_transfers(http, 20)
        accepted = []
        for transfer_id in ids:
            transfer = await store.get_transfer(transfer_id)
            assert transfer is not None
            assert transfer.status is TransferStatus.PENDING
            accepted.append(transfer)
        worker, wake = _idle_worker(context.container)
        for transfer in accepted + accepted[:5]:  # handed twice: still credited once
            worker.settle_soon(transfer)
        await worker.finish_first_attempts()
        assert not wake.is_set()
        assert worker.counters.settled == 20
        for transfer_id in ids:
            transfer = await store.get_transfer(transfer_id)
            assert transfer is not None
            assert transfer.status is TransferStatus.SUCCESS
            assert transfer.attempts == 0
        credits = [e for e in await target.transactions() if e["transaction_type"] == "CREDIT"]
        assert len(credits) == 20
        assert check(await store.snapshot()).ok


async def test_a_failed_first_attempt_leaves_the_transfer_to_the_claim_loop(
    database_url: str,
) -> None:
    context = AsyncClientContext(fast_settings(database_url, worker_enabled=False))
    async with context as http:
        assert context.container is not None
        store = context.container.store
        sender = await register(http, "Sender")
        target = await register(http, "Target")
        assert (await sender.topup(50_000)).status_code == 200
        assert await store.set_account_blocked(wallet_account(target.user_id), True)
        sent = await sender.transfer(target.user_id, 10_000, "Blocked target")
        transfer_id = sent.json()["result"]["transfer_id"]
        accepted = await store.get_transfer(transfer_id)
        assert accepted is not None
        worker, wake = _idle_worker(context.container)
        worker.settle_soon(accepted)
        await worker.finish_first_attempts()
        assert wake.is_set()  # the claim loop is woken to record the failure and retry
        transfer = await store.get_transfer(transfer_id)
        assert transfer is not None
        assert transfer.status is TransferStatus.PENDING
        assert transfer.attempts == 0  # recorded by the claimed path, not here
        results = await worker.run_once()
        assert [r.outcome.value for r in results] == ["retry_later"]
        transfer = await store.get_transfer(transfer_id)
        assert transfer is not None
        assert transfer.attempts == 1
        assert "blocked" in transfer.last_error
        assert check(await store.snapshot()).ok


async def test_the_api_hands_accepted_transfers_to_its_worker(database_url: str) -> None:
    container = await Container.build(fast_settings(database_url))
    try:
        assert isinstance(container.dispatcher, WakeDispatcher)
        assert container.worker is not None
        assert container.dispatcher.on_accepted == container.worker.settle_soon
    finally:
        await container.aclose()
