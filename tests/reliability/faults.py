"""What the fault tests share: a storm that runs while a test breaks something under the
service, the probes beside it, and the verdict afterwards.

A storm is the crash tests' mixed load (top-ups, payments, transfers; each with its own
Idempotency-Key) from careful clients: a 503 is retried with the same key after its
``Retry-After``, a 409 "still in flight" a moment later, until every operation has a final
answer (200 or 400). Beside it, a savings client deposits (the other API's error shape) and a
probe asks ``/healthz`` every tenth of a second.

The verdict, for every fault: no request went unanswered (no dropped connection), none got
a 500, every 503 was in the API's own shape with ``Retry-After``, no answer took longer than
the test's bound; afterwards every operation answered 200 is in the ledger exactly once, no
refused one moved money, every accepted transfer is settled or refunded, the savings balance
is the sum of the deposits answered 200, and ``dompet reconcile`` exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.live import (
    Answer,
    ApiServer,
    Driver,
    Process,
    User,
    make_users,
    plan,
    process_env,
    reconcile_exit_code,
    verify_ledger,
    wait_until_settled,
)

USERS = 10
CLIENTS = 16
OPERATIONS = 20_000  # an upper bound: the storm stops when the test says so
OPENING = 500_000
DEPOSIT = 1_000

FAULT_ENV = {
    # tight limits, so that every wait ends well within a test's patience
    "DB_CONNECT_TIMEOUT_SECONDS": "1",
    "DB_STATEMENT_TIMEOUT_SECONDS": "2",
    "DB_WAIT_TIMEOUT_SECONDS": "1",
    "DB_RETRY_AFTER_SECONDS": "1",
    "REDIS_TIMEOUT_SECONDS": "0.5",
    "LOG_LEVEL": "warning",
}


@dataclass
class Timeline:
    """When the fault began and ended (``time.monotonic()``), as the test made them."""

    began: float = 0.0
    ended: float = 0.0


@dataclass
class Probe:
    """One ``/healthz`` answer."""

    sent: float
    took: float
    status: int | None
    body: Any


@dataclass
class Deposits:
    """The savings client: deposits of ``DEPOSIT`` each, retried until answered."""

    no_rekening: str = ""
    answers: list[Answer] = field(default_factory=list)
    accepted: int = 0
    unexpected: list[str] = field(default_factory=list)


@dataclass
class FaultRun:
    """Everything a fault test saw, and the figures for docs/reliability.md."""

    timeline: Timeline
    driver: Driver
    deposits: Deposits
    probes: list[Probe]
    ops_sent: int = 0

    @property
    def answers(self) -> list[Answer]:
        return self.driver.answers + self.deposits.answers

    def during(self) -> list[Answer]:
        """Answers to requests sent while the fault lasted."""
        return [a for a in self.answers if self.timeline.began <= a.sent < self.timeline.ended]

    def statuses(self, answers: list[Answer] | None = None) -> Counter[int | None]:
        return Counter(a.status for a in (self.answers if answers is None else answers))

    def recovered_after(self) -> float:
        """Seconds from the fault's end to the first write answered 200 that was sent after
        it (inf: none)."""
        firsts = [
            a.answered for a in self.answers if a.status == 200 and a.sent >= self.timeline.ended
        ]
        return min(firsts) - self.timeline.ended if firsts else float("inf")

    def slowest(self) -> float:
        return max((a.took for a in self.answers), default=0.0)

    def summary(self, name: str) -> str:
        during = self.statuses(self.during())
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(during.items(), key=str))
        return (
            f"{name}: {self.ops_sent} operations; during the fault "
            f"({self.timeline.ended - self.timeline.began:.1f} s) {shown}; "
            f"slowest answer {self.slowest():.2f} s; "
            f"recovered {self.recovered_after():.2f} s after the fault ended"
        )

    # -- the verdict ---------------------------------------------------------------------------
    def check_answers(self, slowest_allowed: float) -> None:
        """No dropped connection, no 500, every 503 in its API's shape with Retry-After, no
        answer slower than ``slowest_allowed`` seconds."""
        assert self.driver.unexpected == [], self.driver.unexpected[:5]
        assert self.deposits.unexpected == [], self.deposits.unexpected[:5]
        dropped = [a for a in self.answers if a.status is None]
        assert dropped == [], f"{len(dropped)} requests got no answer: {dropped[:3]}"
        odd = [a for a in self.answers if a.status not in (200, 400, 409, 503)]
        assert odd == [], f"unexpected answers: {odd[:3]}"
        for answer in self.answers:
            if answer.status != 503:
                continue
            assert answer.retry_after is not None, answer
            assert answer.retry_after.isdigit(), answer
            key = "remark" if answer.path == "/tabung" else "message"
            assert isinstance(answer.body, dict), answer
            assert set(answer.body) == {key}, answer
            assert answer.body[key], answer
        assert self.slowest() <= slowest_allowed, (
            f"an answer took {self.slowest():.2f} s (allowed {slowest_allowed} s): "
            f"{max(self.answers, key=lambda a: a.took)}"
        )

    def unavailable_messages(self) -> Counter[str]:
        return Counter(
            str(a.body.get("message") or a.body.get("remark"))
            for a in self.answers
            if a.status == 503 and isinstance(a.body, dict)
        )

    def check_health_said_unreachable(self, slowest_allowed: float) -> None:
        """``/healthz`` answered 503 "unreachable" during the fault, 200 after, and never
        slower than ``slowest_allowed``."""
        during = [
            p for p in self.probes if self.timeline.began + 0.5 <= p.sent < self.timeline.ended
        ]
        assert during, "no health probe during the fault"
        down = [p for p in during if p.status == 503]
        assert down, f"/healthz never said the database was down: {during[:3]}"
        for probe in down:
            assert probe.body.get("database") == "unreachable", probe
        assert all(p.status in (200, 503) for p in self.probes), self.probes
        assert max(p.took for p in self.probes) <= slowest_allowed, max(
            self.probes, key=lambda p: p.took
        )
        assert self.probes[-1].status == 200, self.probes[-1]


async def verify_afterwards(
    run: FaultRun, api: ApiServer, database_url: str, users: list[User], ops: list[Any]
) -> dict[str, int]:
    """Every accepted transfer settles by itself, the ledger holds every answered operation
    exactly once and nothing refused, the deposits add up, and reconcile exits 0."""
    await wait_until_settled(database_url, patience=60)
    figures = await verify_ledger(database_url, users, ops, OPENING)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as http:
        saldo = await http.get(f"/saldo/{run.deposits.no_rekening}")
    assert saldo.status_code == 200, saldo.text
    assert saldo.json()["saldo"] == run.deposits.accepted * DEPOSIT, "a deposit was lost or doubled"
    code, output = reconcile_exit_code(database_url)
    assert code == 0, output
    return figures


@asynccontextmanager
async def storm(
    api: ApiServer, seed: str, *, clients: int = CLIENTS
) -> AsyncIterator[tuple[FaultRun, list[User], list[Any]]]:
    """Run the storm (and the probes) for as long as the block lasts; the block breaks
    something and marks ``run.timeline``. On exit every operation sent has its final answer."""
    users = await make_users(api.base_url, USERS, OPENING)
    ops = plan(random.Random(seed), USERS, OPERATIONS, seed)
    driver = Driver(api.base_url, users, retry_unavailable=True)
    deposits = Deposits()
    probes: list[Probe] = []
    run = FaultRun(Timeline(), driver, deposits, probes)
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        opened = await http.post(
            "/daftar",
            json={"nama": "Siti Badai", "nik": "3171000000000001", "no_hp": "081299990001"},
        )
        assert opened.status_code == 200, opened.text
        deposits.no_rekening = opened.json()["no_rekening"]
        tasks = [
            asyncio.create_task(driver.run(ops, clients, retry_until_answered=True)),
            asyncio.create_task(_deposit(http, deposits, stop, seed)),
            asyncio.create_task(_probe(http, probes, stop)),
        ]
        try:
            await asyncio.sleep(1.0)  # the storm is under way before the fault
            yield run, users, ops
            await asyncio.sleep(1.0)  # and goes on a moment after the recovery
        finally:
            driver.stopping = True
            stop.set()
            done, _ = await asyncio.wait(tasks, timeout=120)
            for task in tasks:
                if task not in done:
                    task.cancel()
            await driver.aclose()
            for task in done:
                task.result()  # a harness error fails the test
    run.ops_sent = sum(op.tries > 0 for op in ops)
    sent = [op for op in ops if op.tries > 0]
    unanswered = [op for op in sent if op.status not in (200, 400)]
    assert unanswered == [], _why_unanswered(run, unanswered)
    ops[:] = sent


def _why_unanswered(run: FaultRun, unanswered: list[Any]) -> str:
    """The operations left without a final answer, each with the last answers it got."""
    lines = [f"{len(unanswered)} operations without a final answer:"]
    for op in unanswered[:3]:
        last = [a for a in run.driver.answers if a.key == op.key][-3:]
        lines.append(f"{op}; its last answers: {last}")
    return "\n".join(lines)


async def _deposit(
    http: httpx.AsyncClient, deposits: Deposits, stop: asyncio.Event, seed: str
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        key = f"{seed}-deposit-{n}"
        for _ in range(600):
            sent = time.monotonic()
            try:
                response = await http.post(
                    "/tabung",
                    json={"no_rekening": deposits.no_rekening, "nominal": DEPOSIT},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError as exc:
                deposits.answers.append(
                    Answer(sent, time.monotonic() - sent, "/tabung", None, repr(exc))
                )
                await asyncio.sleep(0.05)
                continue
            body = response.json()
            retry_after = response.headers.get("retry-after")
            deposits.answers.append(
                Answer(
                    sent,
                    time.monotonic() - sent,
                    "/tabung",
                    response.status_code,
                    body,
                    retry_after,
                )
            )
            if response.status_code == 503:
                await asyncio.sleep(min(float(retry_after or 1), 1.0))
                continue
            if response.status_code == 400 and "Idempotency-Key" in str(body.get("remark")):
                await asyncio.sleep(0.1)  # still in flight (the savings API's 409)
                continue
            if response.status_code == 200:
                deposits.accepted += 1
            else:
                deposits.unexpected.append(f"{response.status_code} {body}")
            break
        await asyncio.sleep(0.02)


async def _probe(http: httpx.AsyncClient, probes: list[Probe], stop: asyncio.Event) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        try:
            response = await http.get("/healthz")
            probes.append(
                Probe(sent, time.monotonic() - sent, response.status_code, response.json())
            )
        except httpx.TransportError as exc:
            probes.append(Probe(sent, time.monotonic() - sent, None, repr(exc)))
        await asyncio.sleep(0.1)


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], patience: float, what: str
) -> float:
    """Poll ``condition`` until true; seconds it took. AssertionError after ``patience``."""
    started = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > patience:
            raise AssertionError(f"{what}: not within {patience} s")
        await asyncio.sleep(0.05)


def fault_env(database_url: str, **extra: str) -> dict[str, str]:
    return process_env(database_url, **{**FAULT_ENV, **extra})


@contextlib.contextmanager
def running(*processes: Process) -> Any:
    """Stop the given processes (by their pid) whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def log_of(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return "(no log)"
