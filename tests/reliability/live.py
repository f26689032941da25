"""Real processes for the storm and crash tests: the API server, a worker, a traffic driver.

Everything binds 127.0.0.1 on free ports; every process started here is stopped here, by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from dompet.domain.invariants import check
from dompet.domain.ledger import Entry, EntryType, JournalKind, wallet_account
from dompet.domain.transfers import TransferStatus
from dompet.storage import open_store
from tests.support.servers import find_free_port

READY_TIMEOUT = 60.0
MAX_TRIES = 600
"""A retrying client gives up after this many attempts (bounded loops, even if a test fails)."""


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a Dompet process under test: cheap PIN hashing, quick retries."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOMPET_", "DATABASE_URL"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "DOMPET_ENV": "test",
            "PIN_HASH_TIME_COST": "1",
            "PIN_HASH_MEMORY_KIB": "1024",
            "PIN_HASH_PARALLELISM": "1",
            "WORKER_SWEEP_SECONDS": "0.1",
            "WORKER_LEASE_SECONDS": "2",
            "SETTLE_RETRY_BASE_SECONDS": "0.05",
            "SETTLE_RETRY_MAX_SECONDS": "0.2",
            "LOGIN_MAX_FAILURES": "1000",
            # every client here is 127.0.0.1 (the lock tests set the limits they test)
            "LOGIN_FAILURES_PER_CLIENT": "0",
            "REGISTRATIONS_PER_CLIENT": "0",
            "LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            # For the nx-27017 test server; no effect on a real MongoDB replica set.
            "MONGODB_ALLOW_STANDALONE": "1",
        }
    )
    env.update(extra)
    return env


class Process:
    """One ``python -m dompet.cli ...`` child, in its own process group, logging to a file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dompet.cli", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, no goodbye: the crash under test."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class ApiServer(Process):
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = find_free_port()
        super().__init__(["serve", "--host", "127.0.0.1", "--port", str(self.port)], env, log_path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start_and_wait(self) -> None:
        self.start()
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise RuntimeError(f"API server exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"API server not ready in {READY_TIMEOUT}s:\n{self.log_tail()}")


def reconcile_exit_code(database_url: str) -> tuple[int, str]:
    """Run ``dompet reconcile`` as an operator would; its exit code and output."""
    result = subprocess.run(
        [sys.executable, "-m", "dompet.cli", "reconcile"],
        env=process_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


# -- traffic ------------------------------------------------------------------------------------
@dataclass
class User:
    user_id: str
    token: str


@dataclass
class Op:
    """One money-moving request, with its Idempotency-Key, and what finally became of it."""

    kind: str  # "topup" | "pay" | "transfer"
    user: int
    amount: int
    key: str
    target: int | None = None
    status: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    tries: int = 0

    @property
    def accepted(self) -> bool:
        return self.status == 200


def plan(rng: random.Random, users: int, count: int, prefix: str) -> list[Op]:
    """A mixed load: mostly payments and transfers, some top-ups to keep money flowing."""
    ops: list[Op] = []
    for n in range(count):
        user = rng.randrange(users)
        roll = rng.random()
        amount = rng.randint(1, 20_000)
        if roll < 0.1:
            ops.append(Op("topup", user, rng.randint(1, 50_000), f"{prefix}-{n}"))
        elif roll < 0.45:
            ops.append(Op("pay", user, amount, f"{prefix}-{n}"))
        else:
            target = rng.choice([u for u in range(users) if u != user])
            ops.append(Op("transfer", user, amount, f"{prefix}-{n}", target))
    return ops


def request_of(op: Op, users: Sequence[User]) -> tuple[str, dict[str, Any]]:
    if op.kind == "topup":
        return "/topup", {"amount": op.amount}
    if op.kind == "pay":
        return "/pay", {"amount": op.amount, "remarks": f"storm {op.key}"}
    assert op.target is not None
    return "/transfer", {
        "target_user": users[op.target].user_id,
        "amount": op.amount,
        "remarks": f"storm {op.key}",
    }


@dataclass(frozen=True)
class Answer:
    """One attempt of one request, as the client saw it."""

    sent: float
    """``time.monotonic()`` when it was sent."""
    took: float
    """Seconds until its answer (or its transport error)."""
    path: str
    status: int | None
    """None: no answer at all (the connection was dropped, refused or timed out)."""
    body: Any
    retry_after: str | None = None
    key: str = ""
    """The Idempotency-Key it was sent with."""

    @property
    def answered(self) -> float:
        return self.sent + self.took


class Driver:
    """Many clients (one connection pool per user) sending operations concurrently.

    Every attempt is logged in ``answers``. With ``retry_unavailable`` a 503 is retried with
    the same Idempotency-Key after its ``Retry-After`` (at most a second), as a careful
    client retries an outage; without, a 503 is unexpected.
    """

    def __init__(
        self, base_url: str, users: Sequence[User], *, retry_unavailable: bool = False
    ) -> None:
        self.base_url = base_url
        self.users = list(users)
        self.retry_unavailable = retry_unavailable
        self.answers: list[Answer] = []
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                timeout=httpx.Timeout(30.0),
                # below uvicorn's 5 s keep-alive, so a request never races the server closing
                # an idle connection
                limits=httpx.Limits(keepalive_expiry=2.0),
                headers={"Authorization": f"Bearer {u.token}"},
            )
            for u in self.users
        ]
        self.unexpected: list[str] = []
        self.stopping = False
        """Set to stop taking new operations (those already sent are still seen through)."""

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def send(self, op: Op, *, retry_until_answered: bool) -> None:
        """Send ``op``; with ``retry_until_answered``, retry (same key) through crashes."""
        path, body = request_of(op, self.users)
        while True:
            op.tries += 1
            if op.tries > MAX_TRIES:
                self.unexpected.append(f"{op.kind} {op.key}: no answer after {MAX_TRIES} tries")
                return
            sent = time.monotonic()
            try:
                response = await self.clients[op.user].post(
                    path, json=body, headers={"Idempotency-Key": op.key}
                )
            except httpx.TransportError as exc:
                self.answers.append(
                    Answer(sent, time.monotonic() - sent, path, None, repr(exc), key=op.key)
                )
                if not retry_until_answered:
                    self.unexpected.append(f"{op.kind}: {type(exc).__name__} {exc}")
                    return
                await asyncio.sleep(0.05)  # the server is down: wait for its restart
                continue
            payload = response.json()
            retry_after = response.headers.get("retry-after")
            self.answers.append(
                Answer(
                    sent,
                    time.monotonic() - sent,
                    path,
                    response.status_code,
                    payload,
                    retry_after,
                    op.key,
                )
            )
            if response.status_code == 409 and retry_until_answered:
                await asyncio.sleep(0.1)  # a crashed attempt still holds the key: retry
                continue
            if response.status_code == 503 and self.retry_unavailable:
                await asyncio.sleep(min(float(retry_after or 1), 1.0))
                continue
            op.status = response.status_code
            if response.status_code == 200:
                op.result = payload["result"]
            elif payload != {"message": "Balance is not enough"}:
                self.unexpected.append(f"{op.kind} {response.status_code} {response.text}")
            return

    async def run(
        self, ops: Sequence[Op], concurrency: int, *, retry_until_answered: bool = False
    ) -> None:
        queue: asyncio.Queue[Op] = asyncio.Queue()
        for op in ops:
            queue.put_nowait(op)

        async def worker() -> None:
            while not self.stopping:
                try:
                    op = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self.send(op, retry_until_answered=retry_until_answered)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def make_users(base_url: str, count: int, opening_balance: int) -> list[User]:
    users: list[User] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for n in range(count):
            phone = f"0878{os.getpid() % 10000:04d}{n:04d}"
            registered = await http.post(
                "/register",
                json={"first_name": f"Storm {n}", "phone_number": phone, "pin": "246810"},
            )
            assert registered.status_code == 200, registered.text
            login = await http.post("/login", json={"phone_number": phone, "pin": "246810"})
            assert login.status_code == 200, login.text
            user = User(
                registered.json()["result"]["user_id"], login.json()["result"]["access_token"]
            )
            topup = await http.post(
                "/topup",
                json={"amount": opening_balance},
                headers={"Authorization": f"Bearer {user.token}"},
            )
            assert topup.status_code == 200, topup.text
            users.append(user)
    return users


# -- verdict ------------------------------------------------------------------------------------
async def wait_until_settled(database_url: str, patience: float = 120.0) -> None:
    """Wait (bounded) until no transfer is PENDING; the worker must get there by itself."""
    store = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        deadline = time.monotonic() + patience
        while True:
            counts = await store.transfer_counts()
            if counts[TransferStatus.PENDING] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"transfers still PENDING after {patience}s: {counts}")
            await asyncio.sleep(0.1)
    finally:
        await store.close()


async def verify_ledger(
    database_url: str, users: Sequence[User], ops: Sequence[Op], opening_balance: int
) -> dict[str, int]:
    """Everything accepted is in the ledger exactly once; money is conserved; no overdraft."""
    store = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        report = check(await store.snapshot())
        assert report.ok, report.violations
        histories: dict[int, list[Entry]] = {
            n: await store.entries(wallet_account(u.user_id)) for n, u in enumerate(users)
        }
        balances = {n: await store.balance(wallet_account(u.user_id)) for n, u in enumerate(users)}
    finally:
        await store.close()

    accepted = [op for op in ops if op.accepted]
    for n, value in balances.items():
        assert value is not None
        assert value >= 0, f"user {n} has a negative balance {value}"
    topped = sum(op.amount for op in accepted if op.kind == "topup")
    paid = sum(op.amount for op in accepted if op.kind == "pay")
    total = sum(v for v in balances.values() if v is not None)
    assert total == len(users) * opening_balance + topped - paid, "money was created or lost"

    references: dict[int, Counter[tuple[JournalKind, str]]] = {
        n: Counter((e.kind, e.reference) for e in entries) for n, entries in histories.items()
    }
    id_field = {"topup": "top_up_id", "pay": "payment_id", "transfer": "transfer_id"}
    kind_of = {
        "topup": JournalKind.TOPUP,
        "pay": JournalKind.PAYMENT,
        "transfer": JournalKind.TRANSFER_OUT,
    }
    for op in accepted:
        reference = op.result[id_field[op.kind]]
        assert references[op.user][(kind_of[op.kind], reference)] == 1, f"{op} not in ledger once"
        if op.kind == "transfer":
            assert op.target is not None
            credited = references[op.target][(JournalKind.TRANSFER_SETTLE, reference)]
            assert credited == 1, f"transfer {reference} credited {credited} times"
    # nothing that was refused (or never answered) moved money
    accepted_refs = {op.result[id_field[op.kind]] for op in accepted}
    for n, entries in histories.items():
        for entry in entries:
            if entry.kind is JournalKind.TRANSFER_SETTLE:
                assert entry.entry_type is EntryType.CREDIT
            assert entry.status.value == "SUCCESS", entry
            if entry.kind in (JournalKind.TOPUP, JournalKind.PAYMENT, JournalKind.TRANSFER_OUT):
                opening = entry.kind is JournalKind.TOPUP and entry.amount == opening_balance
                assert entry.reference in accepted_refs or opening, f"unexpected {entry} of {n}"
    return {
        "accepted": len(accepted),
        "refused": sum(op.status == 400 for op in ops),
        "transfers": sum(op.kind == "transfer" for op in accepted),
    }
