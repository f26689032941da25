"""The network to PostgreSQL slows down, stops answering, drops its connections, then heals.

A TCP proxy (tests/support/tcp_proxy.py) sits between the API and PostgreSQL. With a small pool
and tight limits: under latency the requests beyond DB_MAX_WAITING get a 503 at once and those
that wait past DB_WAIT_TIMEOUT_SECONDS a 503 (the waiting is bounded, not an unbounded queue
in memory); when the network stops answering the statement and connect timeouts fire; when
its connections are cut the requests get a 503 at once; when it heals the service recovers by
itself within seconds. No answer is a 500 or a dropped connection, none hangs, and the ledger
is whole afterwards (tests/reliability/faults.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dompet.storage import faults, migrate
from tests.reliability.faults import fault_env, running, storm, verify_afterwards, wait_for
from tests.reliability.live import ApiServer
from tests.support.tcp_proxy import TcpProxy

POOL = 4
MAX_WAITING = 8
CLIENTS = 32
LATENCY = 0.05
SLOWEST = 6.0
"""Seconds any answer may take. One database call waits at most 1 s for a connection, 1 s to
connect and 1 s for its statement; a request makes two or three calls one after another."""
RECOVERY = 5.0


@pytest.mark.slow
@pytest.mark.postgres
async def test_slow_then_silent_then_cut_network_to_postgres(
    postgres_db_url: str, tmp_path: Path
) -> None:
    await migrate(postgres_db_url)
    direct = make_url(postgres_db_url)
    assert direct.port is not None
    async with TcpProxy(direct.port) as proxy:
        via_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
        env = fault_env(
            via_proxy,
            PG_POOL_SIZE=str(POOL),
            DB_MAX_WAITING=str(MAX_WAITING),
            DB_WAIT_TIMEOUT_SECONDS="1",
            DB_STATEMENT_TIMEOUT_SECONDS="1",
            DB_CONNECT_TIMEOUT_SECONDS="1",
        )
        api = ApiServer(env, tmp_path / "api.log")
        await api.start_and_wait()
        with running(api):
            async with storm(api, "network", clients=CLIENTS) as (run, users, ops):
                run.timeline.began = time.monotonic()
                proxy.delay(LATENCY)  # each way, on every message: a round trip takes 0.1 s
                await asyncio.sleep(3.0)
                slow_until = time.monotonic()
                proxy.stall()  # nothing gets through: only the timeouts end the waits
                await asyncio.sleep(3.0)
                silent_until = time.monotonic()
                proxy.cut()  # every connection reset, new ones too
                await asyncio.sleep(1.5)
                proxy.heal()
                run.timeline.ended = time.monotonic()
                await wait_for(lambda: run.recovered_after() < RECOVERY, RECOVERY + 5, "recovery")
            print(run.summary("postgresql network: latency, silence, cut"))

            def said(message: str, since: float, until: float) -> int:
                return sum(
                    1
                    for a in run.answers
                    if a.status == 503 and since <= a.answered < until and message in str(a.body)
                )

            slow = (run.timeline.began, slow_until)
            silent = (slow_until, silent_until)
            cut = (silent_until, run.timeline.ended)
            figures = {
                "busy while slow": said(faults.BUSY, *slow),
                "no connection in time while slow": said(faults.NO_CONNECTION, *slow),
                "timed out while silent": said(faults.TOO_SLOW, *silent),
                "unreachable while cut": said(faults.UNREACHABLE, *cut),
            }
            print(f"network: {figures}; 503 messages {dict(run.unavailable_messages())}")
            assert figures["busy while slow"] > 0, "the waiting requests were not bounded"
            assert figures["timed out while silent"] > 0, "no statement or connect timeout fired"
            assert figures["unreachable while cut"] > 0, "cut connections were not noticed"
            run.check_answers(SLOWEST)
            assert run.recovered_after() <= RECOVERY
            run.check_health_said_unreachable(SLOWEST)
            print(await verify_afterwards(run, api, postgres_db_url, users, ops))
