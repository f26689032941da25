"""A worker's heartbeat while the database is unavailable: it is tried again at every sweep,
but said once per outage (it was a warning every tenth of a second), and its return is said
too. The store is real; only its ``record_heartbeat`` is made to fail as an outage does."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from dompet.domain.errors import StoreUnavailable
from dompet.storage import faults
from dompet.storage.port import LedgerStore
from dompet.worker.heartbeat import Heartbeat, SettlementCounters


async def test_an_unrecordable_heartbeat_is_said_once_per_outage(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = store.record_heartbeat
    down = True
    tries = 0

    async def record(*args: Any) -> None:
        nonlocal tries
        tries += 1
        if down:
            raise StoreUnavailable(faults.UNREACHABLE)
        await real(*args)

    monkeypatch.setattr(store, "record_heartbeat", record)
    counters = SettlementCounters()
    heartbeat = Heartbeat(
        store, lambda: datetime.now(UTC), "w-outage", "standalone", counters, interval=60
    )
    with caplog.at_level(logging.WARNING, logger="dompet.worker.heartbeat"):
        for _ in range(20):
            await heartbeat.beat()
        assert tries == 20  # tried at every sweep, as the outage may end at any one
        assert not heartbeat.has_beaten
        down = False
        await heartbeat.beat()
        await heartbeat.beat()  # recorded now: the next waits for the interval
    assert tries == 21
    assert heartbeat.has_beaten
    said = [r.getMessage() for r in caplog.records if r.name == "dompet.worker.heartbeat"]
    assert len(said) == 2, said
    assert said[0].startswith("could not record the heartbeat of w-outage"), said
    assert said[1].startswith("recorded the heartbeat of w-outage again"), said
    beats = [b for b in await store.heartbeats() if b.worker_id == "w-outage"]
    assert len(beats) == 1
