"""The login lock and sessions against real servers over HTTP (issue 19), on every engine.

`dompet serve --workers 2` (two processes, the kernel spreading the connections): 40 wrong
PINs sent at once, then the right one. The attempt is taken from the store before the PIN is
checked, so at most LOGIN_MAX_FAILURES of the 40 get a check (401), the rest 429, and the
right PIN is refused (429) too. The same for a dashboard operator. And a session ended through
one server process is refused by another at once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.reliability.live import ApiServer, process_env

BURST = 40
MAX_FAILURES = 5
PIN = "135790"

pytestmark = pytest.mark.concurrency  # real parallel writers: a real server on MongoDB


def lock_env(database_url: str) -> dict[str, str]:
    return process_env(
        database_url,
        LOGIN_MAX_FAILURES=str(MAX_FAILURES),
        LOGIN_LOCK_SECONDS="300",
        PIN_HASH_CONCURRENCY="64",  # this test is about the lock, not the hashing bound
    )


@pytest.fixture
async def two_workers(database_url: str, tmp_path: Path) -> AsyncIterator[ApiServer]:
    api = ApiServer(lock_env(database_url), tmp_path / "api.log")
    api.args += ["--workers", "2"]
    await api.start_and_wait()
    try:
        yield api
    finally:
        api.stop()


async def burst(
    base_url: str, path: str, bodies: Sequence[object], form: bool = False
) -> list[int]:
    """Every body POSTed at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:

        async def one(body: object) -> int:
            if form:
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                return (await http.post(path, content=str(body), headers=headers)).status_code
            return (await http.post(path, json=body)).status_code

        return list(await asyncio.gather(*(one(body) for body in bodies)))


async def test_forty_wrong_pins_at_once_get_at_most_five_checks(two_workers: ApiServer) -> None:
    phone = "0811255590"
    async with httpx.AsyncClient(base_url=two_workers.base_url, timeout=30) as http:
        registered = await http.post(
            "/register", json={"first_name": "Korban", "phone_number": phone, "pin": PIN}
        )
        assert registered.status_code == 200, registered.text
    wrong = [{"phone_number": phone, "pin": f"{n:06d}"} for n in range(BURST)]
    statuses = await burst(two_workers.base_url, "/login", wrong)
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= MAX_FAILURES, statuses
    assert statuses.count(429) >= BURST - MAX_FAILURES
    async with httpx.AsyncClient(base_url=two_workers.base_url, timeout=30) as http:
        right = await http.post("/login", json={"phone_number": phone, "pin": PIN})
    assert right.status_code == 429, right.text
    assert 0 < int(right.headers["Retry-After"]) <= 300


async def test_forty_wrong_passwords_at_once_lock_an_operator(
    two_workers: ApiServer, database_url: str
) -> None:
    password = "the-right-operator-password"
    created = subprocess.run(  # noqa: ASYNC221 - a bounded child process, before the burst
        [sys.executable, "-m", "dompet.cli", "create-operator", "ops", "--password-stdin"],
        input=password + "\n",
        env=lock_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    wrong = [f"username=ops&password=wrong-{n}" for n in range(BURST)]
    statuses = await burst(two_workers.base_url, "/dashboard/login", list(wrong), form=True)
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= MAX_FAILURES, statuses
    right = await burst(
        two_workers.base_url, "/dashboard/login", [f"username=ops&password={password}"], True
    )
    assert right == [429]


async def test_a_session_ended_through_one_server_is_refused_by_another(
    database_url: str, tmp_path: Path
) -> None:
    first = ApiServer(lock_env(database_url), tmp_path / "first.log")
    second = ApiServer(lock_env(database_url), tmp_path / "second.log")
    await first.start_and_wait()
    try:
        await second.start_and_wait()
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=30) as one,
            httpx.AsyncClient(base_url=second.base_url, timeout=30) as two,
        ):
            body = {"first_name": "Dua", "phone_number": "0811255591", "pin": PIN}
            assert (await one.post("/register", json=body)).status_code == 200
            login = await one.post("/login", json={"phone_number": "0811255591", "pin": PIN})
            auth = {"Authorization": f"Bearer {login.json()['result']['access_token']}"}
            assert (await one.get("/transactions", headers=auth)).status_code == 200
            assert (await two.get("/transactions", headers=auth)).status_code == 200
            out = await two.post("/logout", headers=auth)
            assert out.json()["result"] == {"sessions_ended": 1}
            assert (await one.get("/transactions", headers=auth)).status_code == 401
            assert (await one.post("/pay", json={"amount": 1}, headers=auth)).status_code == 401
    finally:
        second.stop()
        first.stop()
