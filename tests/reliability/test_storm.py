"""A concurrency storm over real HTTP: many clients, thousands of mixed payments and transfers.

Afterwards money is conserved, no balance is negative, every accepted transfer is credited
exactly once, nothing refused moved money, and ``dompet reconcile`` exits 0. On every engine.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.live import (
    ApiServer,
    Driver,
    make_users,
    plan,
    process_env,
    reconcile_exit_code,
    verify_ledger,
    wait_until_settled,
)

USERS = 16
CLIENTS = 24
OPERATIONS = 2000
OPENING = 200_000


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[ApiServer]:
    """The API with its in-process settlement worker, as `dompet serve` runs it."""
    api = ApiServer(process_env(database_url), tmp_path / "api.log")
    await api.start_and_wait()
    try:
        yield api
    finally:
        api.stop()


@pytest.mark.slow
@pytest.mark.concurrency  # API and worker processes, many clients: a real server on MongoDB
async def test_storm_conserves_money_and_credits_every_transfer_once(
    server: ApiServer, database_url: str
) -> None:
    await body_limit_holds_over_a_real_socket(server)
    users = await make_users(server.base_url, USERS, OPENING)
    ops = plan(random.Random(6), USERS, OPERATIONS, "storm")
    driver = Driver(server.base_url, users)
    started = time.monotonic()
    try:
        # a client that loses a connection retries with the same Idempotency-Key
        await driver.run(ops, CLIENTS, retry_until_answered=True)
    finally:
        await driver.aclose()
    elapsed = time.monotonic() - started
    assert driver.unexpected == []
    assert all(op.status in (200, 400) for op in ops), "a request got no answer"
    retried = sum(op.tries > 1 for op in ops)
    await wait_until_settled(database_url)
    figures = await verify_ledger(database_url, users, ops, OPENING)
    assert figures["transfers"] > OPERATIONS // 4
    assert figures["refused"] > 0, "the load should push some balances to their limit"
    code, output = reconcile_exit_code(database_url)
    assert code == 0, output
    print(
        f"storm: {OPERATIONS} ops in {elapsed:.1f}s ({OPERATIONS / elapsed:.0f}/s), "
        f"{figures}, {retried} retried"
    )


async def body_limit_holds_over_a_real_socket(server: ApiServer) -> None:
    """The body limit holds through uvicorn too, not only through the ASGI transport."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        big = b'{"first_name": "' + b"x" * 20_000 + b'"}'
        response = await http.post(
            "/register", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert set(response.json()) == {"message"}

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b" " * 1000

        streamed = await http.post(
            "/daftar", content=stream(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 400
        assert "too large" in streamed.json()["remark"]
