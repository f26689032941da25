"""PostgreSQL goes away mid-storm (SIGKILL of the postmaster; a restart under SAQ workers).

While it is gone every request gets a fast 503 in its API's shape with Retry-After (never a
500, never a dropped connection), /healthz says the database is unreachable, and once it is
back the service recovers by itself within seconds; afterwards the ledger is whole (see
tests/reliability/faults.py). Each test runs its own durable cluster (fsync on), so that it
can kill it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from dompet.storage import migrate
from tests.reliability.faults import (
    fault_env,
    running,
    storm,
    verify_afterwards,
    wait_for,
)
from tests.reliability.live import ApiServer, Process
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    require_or_skip,
)

OUTAGE = 3.0
SLOWEST = 4.0
"""Seconds any answer may take: a connect timeout (1 s) and a wait (1 s), with room for a
two-core machine running the storm, the server and the database together."""
RECOVERY = 5.0


async def _durable_server(tmp_path: Path) -> tuple[PostgresServer, str]:
    try:
        server = await asyncio.to_thread(PostgresServer.start, tmp_path, durable=True)
    except ServerUnavailable as exc:
        require_or_skip(exc)
    url = server.create_database("dompet")
    await migrate(url)
    return server, url


@pytest.mark.slow
@pytest.mark.postgres
async def test_postmaster_killed_mid_storm(tmp_path: Path) -> None:
    server, url = await _durable_server(tmp_path)
    try:
        api = ApiServer(fault_env(url), tmp_path / "api.log")  # with its in-process worker
        await api.start_and_wait()
        with running(api):
            async with storm(api, "pg-kill") as (run, users, ops):
                run.timeline.began = time.monotonic()
                server.crash(postmaster_only=True)  # kill -9 of the postmaster's pid
                await asyncio.sleep(OUTAGE)
                await asyncio.to_thread(server.start_again)  # crash recovery
                run.timeline.ended = time.monotonic()
                await wait_for(lambda: run.recovered_after() < RECOVERY, RECOVERY + 5, "recovery")
            print(run.summary("postgresql SIGKILL"))
            assert run.statuses(run.during())[503] > 0, "no 503 while the database was gone"
            run.check_answers(SLOWEST)
            run.check_health_said_unreachable(SLOWEST)
            assert run.recovered_after() <= RECOVERY
            print(await verify_afterwards(run, api, url, users, ops))
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_postgres_restarted_under_saq_workers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    server, url = await _durable_server(tmp_path)
    try:
        env = fault_env(
            url,
            REDIS_URL=redis_server.url,
            SAQ_QUEUE_NAME=f"fault-{uuid.uuid4().hex[:8]}",
            DOMPET_WORKER="0",
            SAQ_SWEEP_SECONDS="1",
            SAQ_SWEEP_AFTER_SECONDS="2",
        )
        api = ApiServer(env, tmp_path / "api.log")
        worker = Process(["worker", "--queue", "saq"], env, tmp_path / "worker.log")
        await api.start_and_wait()
        worker.start()
        with running(api, worker):
            async with storm(api, "pg-restart") as (run, users, ops):
                run.timeline.began = time.monotonic()
                await asyncio.to_thread(server.halt)  # a fast shutdown: sessions are ended
                await asyncio.sleep(OUTAGE)
                await asyncio.to_thread(server.start_again)
                run.timeline.ended = time.monotonic()
                await wait_for(lambda: run.recovered_after() < RECOVERY, RECOVERY + 5, "recovery")
            print(run.summary("postgresql restart, SAQ"))
            assert run.statuses(run.during())[503] > 0, "no 503 while the database was gone"
            run.check_answers(SLOWEST)
            run.check_health_said_unreachable(SLOWEST)
            assert run.recovered_after() <= RECOVERY
            assert worker.alive, worker.log_tail()
            print(await verify_afterwards(run, api, url, users, ops))
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_worker_started_while_the_database_is_down_waits_for_it(tmp_path: Path) -> None:
    """A `dompet worker` started during an outage (a restart, a compose stack coming up in any
    order) waits for the database (container.START_PATIENCE_SECONDS) instead of dying on its
    first read, and settles once the database is back."""
    server, url = await _durable_server(tmp_path)
    try:
        await asyncio.to_thread(server.halt)
        worker = Process(["worker", "--queue", "db"], fault_env(url), tmp_path / "worker.log")
        worker.start()
        with running(worker):
            await asyncio.sleep(OUTAGE)
            assert worker.alive, worker.log_tail()
            await asyncio.to_thread(server.start_again)
            await wait_for(
                lambda: "settlement worker" in worker.log_tail(), RECOVERY + 5, "the worker started"
            )
            assert worker.alive, worker.log_tail()
    finally:
        await asyncio.to_thread(server.stop)
