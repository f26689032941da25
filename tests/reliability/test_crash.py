"""Crash tests: SIGKILL the API process and the settlement worker at random points of a storm.

Clients retry with their Idempotency-Key until they get an answer, as a careful client would.
Afterwards every request answered 2xx is in the ledger exactly once, nothing else moved money,
every PENDING transfer settles exactly once (the restarted worker picks up what the killed one
held), and ``dompet reconcile`` exits 0. On every engine; on PostgreSQL against a server with
fsync and synchronous commits on (what a durable deployment runs), not the suite's fast one.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.reliability.live import (
    ApiServer,
    Driver,
    Process,
    make_users,
    plan,
    process_env,
    reconcile_exit_code,
    verify_ledger,
    wait_until_settled,
)

USERS = 12
CLIENTS = 16
OPERATIONS = 5000  # an upper bound: the storm stops soon after the last kill
MIN_SENT = 100
OPENING = 200_000
KILLS = 5


@pytest.fixture
def postgres_db_url(durable_postgres_db_url: str) -> str:
    """PostgreSQL here is the durable cluster (fsync on), not the suite's fast one."""
    return durable_postgres_db_url


@pytest.mark.slow
@pytest.mark.concurrency  # API and worker processes, many clients: a real server on MongoDB
async def test_sigkill_during_a_storm_loses_nothing_accepted(
    database_url: str, tmp_path: Path, engine_name: str
) -> None:
    rng = random.Random(f"crash-{engine_name}")
    env = process_env(
        database_url,
        DOMPET_WORKER="0",  # settlement only in the separate `dompet worker` process
        IDEMPOTENCY_IN_FLIGHT_SECONDS="1",  # a key held by a killed request frees up soon
    )
    api = ApiServer(env, tmp_path / "api.log")
    worker = Process(["worker"], env, tmp_path / "worker.log")
    await api.start_and_wait()
    worker.start()
    try:
        users = await make_users(api.base_url, USERS, OPENING)
        ops = plan(rng, USERS, OPERATIONS, "crash")
        driver = Driver(api.base_url, users)
        storm = asyncio.create_task(driver.run(ops, CLIENTS, retry_until_answered=True))
        killed: list[str] = []
        try:
            while len(killed) < KILLS and not storm.done():
                await asyncio.sleep(rng.uniform(0.2, 0.8))
                if storm.done():
                    break
                victim = rng.choice(["api", "worker", "both"])
                if victim in ("api", "both"):
                    api.kill()
                if victim in ("worker", "both"):
                    worker.kill()
                killed.append(victim)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                if not worker.alive:
                    worker.start()
                if not api.alive:
                    await api.start_and_wait()
            await asyncio.sleep(0.5)  # some traffic after the last restart too
            driver.stopping = True
            await storm
        finally:
            if not storm.done():
                storm.cancel()
            await driver.aclose()
        assert len(killed) == KILLS, f"the storm ended before {KILLS} kills: {killed}"
        assert {"api", "both"} & set(killed), "the seed must kill the API at least once"
        assert {"worker", "both"} & set(killed), "the seed must kill the worker at least once"
        assert driver.unexpected == []
        ops = [op for op in ops if op.tries > 0]
        assert len(ops) >= MIN_SENT, f"only {len(ops)} operations were sent"
        assert all(op.status in (200, 400) for op in ops)
        await wait_until_settled(database_url)
        figures = await verify_ledger(database_url, users, ops, OPENING)
        code, output = reconcile_exit_code(database_url)
        assert code == 0, output
        retried = sum(op.tries > 1 for op in ops)
        print(f"crash: kills={killed} sent={len(ops)} {figures} retried={retried}")
    finally:
        worker.stop()
        api.stop()
