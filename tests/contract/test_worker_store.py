"""Store contract for the port methods added by issue 4, on every engine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dompet.domain.errors import OperatorTaken
from dompet.domain.ids import new_id
from dompet.domain.ledger import settlement_journal, transfer_out_journal
from dompet.domain.monitoring import WorkerHeartbeat
from dompet.domain.operators import Operator
from dompet.domain.transfers import TransferStatus
from dompet.storage.port import LedgerStore
from tests.contract.helpers import new_user, now, pending_transfer, top_up


async def test_operators_are_unique_and_found_by_username(store: LedgerStore) -> None:
    moment = now()
    await store.add_operator(Operator("siti", "$argon2id$v=19$fake", moment))
    with pytest.raises(OperatorTaken):
        await store.add_operator(Operator("siti", "$argon2id$v=19$other", moment))
    found = await store.find_operator("siti")
    assert found is not None
    assert found.password_hash == "$argon2id$v=19$fake"
    assert abs(found.created_at - moment) < timedelta(milliseconds=1)
    assert await store.find_operator("budi") is None


async def test_overdue_transfers_lists_due_pending_ones_oldest_first(store: LedgerStore) -> None:
    sender, target = await new_user(store), await new_user(store)
    await top_up(store, sender.id, 10_000)
    made = []
    for _ in range(3):
        transfer = pending_transfer(sender.id, target.id, 100)
        journal = transfer_out_journal(new_id(), transfer.id, sender.id, 100, "", now())
        await store.open_transfer(transfer, journal)
        made.append(transfer)
    later = now() + timedelta(seconds=1)
    assert await store.overdue_transfers(made[0].created_at - timedelta(seconds=1), 10) == []
    overdue = await store.overdue_transfers(later, 10)
    assert [t.id for t in overdue] == [t.id for t in made]
    assert [t.id for t in await store.overdue_transfers(later, 2)] == [t.id for t in made[:2]]
    # A claimed transfer is still overdue (its worker may be dead); a back-off is not due.
    await store.claim_due_transfers("w1", later, timedelta(minutes=5), 1)
    await store.record_settlement_failure(made[1].id, "boom", later + timedelta(hours=1))
    assert [t.id for t in await store.overdue_transfers(later, 10)] == [made[0].id, made[2].id]
    # A settled transfer is not.
    journal = settlement_journal(new_id(), made[2].id, target.id, 100, "", now())
    assert await store.close_transfer(made[2].id, TransferStatus.SUCCESS, journal, now())
    assert [t.id for t in await store.overdue_transfers(later, 10)] == [made[0].id]


async def test_heartbeats_upsert_and_release_claims(store: LedgerStore) -> None:
    moment = now()
    beat = WorkerHeartbeat("w-1", "standalone", moment, moment, 0, 0, {"state": "running"})
    await store.record_heartbeat(beat)
    later = moment + timedelta(seconds=5)
    await store.record_heartbeat(
        WorkerHeartbeat("w-1", "standalone", moment, later, 7, 1, {"state": "stopped"})
    )
    (got,) = await store.heartbeats()
    assert (got.settled, got.failed, got.info) == (7, 1, {"state": "stopped"})
    assert abs(got.last_seen_at - later) < timedelta(milliseconds=1)
