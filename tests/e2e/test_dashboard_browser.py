"""The dashboard in a real headless Chromium (Debian's), driven by Playwright.

First, the real app runs under uvicorn (`dompet serve`) without its in-process worker, so a
transfer stays PENDING on screen until a separate `dompet worker` process settles it. A
transfer to a blocked wallet fails its first attempt and would wait an hour; the operator
unblocks the wallet and presses "Retry now". Then, served as `make run` serves it (the
in-process worker on), after a known load every figure the page shows is checked against the
ledger, and every time is in the display zone. Screenshots go to artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from dompet.domain.transfers import TransferStatus
from dompet.services.monitoring import percentile
from dompet.storage import open_store
from tests.support.servers import find_free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
JAKARTA = ZoneInfo("Asia/Jakarta")
USER, PASSWORD = "ops", "browser-test-password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            "DATABASE_URL": database_url,
            "DOMPET_ENV": "test",
            "DASHBOARD_REFRESH_SECONDS": "0.3",
            "WORKER_SWEEP_SECONDS": "0.1",
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "SETTLE_RETRY_BASE_SECONDS": "3600",
            "SETTLE_RETRY_MAX_SECONDS": "3600",
            "PIN_HASH_TIME_COST": "1",
            "PIN_HASH_MEMORY_KIB": "1024",
            "PIN_HASH_PARALLELISM": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dompet.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def _served(tmp_path: Path, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """`dompet serve` with ``env`` on a free port; a migrated SQLite database."""
    subprocess.run(
        [sys.executable, "-m", "dompet.cli", "migrate"], env=env, check=True, capture_output=True
    )
    # There is no default operator: the first one is made as the README says.
    subprocess.run(
        [sys.executable, "-m", "dompet.cli", "create-operator", USER, "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    port = find_free_port()
    server = _spawn(
        ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "server.log"
    )
    processes = [server]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("the server never answered /healthz")
            time.sleep(0.1)
        yield {"base": base, "env": env, "processes": processes, "tmp": tmp_path}
    finally:
        for proc in processes:
            _stop(proc)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`dompet serve` without its in-process worker."""
    env = _env(f"sqlite:///{tmp_path / 'dompet.db'}")
    with _served(tmp_path, {**env, "DOMPET_WORKER": "0"}) as served:
        served["env"] = env
        yield served


@pytest.fixture
def as_make_run(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`dompet serve` as `make run` serves it: the in-process worker, the default sweep period,
    logs at INFO; settlements give up after two attempts 0.2 s apart. The periodic heartbeat
    is an hour apart: the Workers table may only rely on the heartbeat a worker records when
    its counters change (with the default 5 s it would merely lag)."""
    env = _env(f"sqlite:///{tmp_path / 'dompet.db'}")
    for name in ("WORKER_SWEEP_SECONDS", "LOG_LEVEL"):
        del env[name]
    env.update(
        {
            "WORKER_HEARTBEAT_SECONDS": "3600",
            "SETTLE_MAX_ATTEMPTS": "2",
            "SETTLE_RETRY_BASE_SECONDS": "0.2",
            "SETTLE_RETRY_MAX_SECONDS": "0.2",
        }
    )
    with _served(tmp_path, env) as served:
        yield served


def _wallet(http: httpx.Client, name: str, phone: str) -> tuple[str, dict[str, str]]:
    body = {
        "first_name": name,
        "last_name": "Saputro",
        "phone_number": phone,
        "address": "Jl. Merdeka 1",
        "pin": "123456",
    }
    registered = http.post("/register", json=body)
    assert registered.status_code == 200, registered.text
    token = http.post("/login", json={"phone_number": phone, "pin": "123456"}).json()["result"]
    return registered.json()["result"]["user_id"], {
        "Authorization": f"Bearer {token['access_token']}"
    }


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dompet.cli", *args], env=env, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_operator_watches_a_transfer_settle_and_retries_a_failed_one(
    stack: dict[str, Any], chromium_executable: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    # Waits, not timings: generous, for a loaded 2-core machine (a worker process boots ~2 s).
    expect.set_options(timeout=60_000)
    base, env = stack["base"], stack["env"]
    http = httpx.Client(base_url=base, timeout=10)
    _sender, sender_auth = _wallet(http, "Sender", "081299990001")
    target, _ = _wallet(http, "Target", "081299990002")
    blocked, _ = _wallet(http, "Blocked", "081299990003")
    assert http.post("/topup", json={"amount": 100_000}, headers=sender_auth).status_code == 200
    sent = http.post(
        "/transfer",
        json={"target_user": target, "amount": 25_000, "remarks": "Bayar kos"},
        headers=sender_auth,
    )
    assert sent.status_code == 200, sent.text

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/dashboard")
            expect(page).to_have_url(f"{base}/dashboard/login?next=/dashboard")
            page.fill("#username", USER)
            page.fill("#password", "not-the-password")
            page.click("button[type=submit]")
            expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/dashboard")

            pending = page.locator('#counts [data-key="PENDING"] b')
            success = page.locator('#counts [data-key="SUCCESS"] b')
            expect(pending).to_have_text("1")
            expect(success).to_have_text("0")
            page.screenshot(path=str(ARTIFACTS / "dashboard-pending.png"), full_page=True)

            # A worker process starts: the page, refreshing by itself, shows the settlement.
            stack["processes"].append(
                _spawn(["worker", "--queue", "db"], env, stack["tmp"] / "worker.log")
            )
            expect(success).to_have_text("1")
            expect(pending).to_have_text("0")
            expect(page.locator("#workers")).to_contain_text("standalone")
            expect(page.locator("#invariants-badge")).to_have_text("All invariants hold")

            # A transfer to a blocked wallet fails its first attempt and waits an hour.
            _cli(env, "block-account", f"wallet:{blocked}")
            failing = http.post(
                "/transfer",
                json={"target_user": blocked, "amount": 5_000, "remarks": "Titip"},
                headers=sender_auth,
            )
            transfer_id = failing.json()["result"]["transfer_id"]
            row = page.locator(f'#failures tr[data-transfer="{transfer_id}"]')
            expect(row).to_contain_text("is blocked")
            expect(row.locator(".status")).to_have_text("PENDING")
            expect(pending).to_have_text("1")
            page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)

            _cli(env, "unblock-account", f"wallet:{blocked}")
            row.get_by_role("button", name="Retry now").click()
            expect(page.locator("#retry-result")).to_contain_text(f"Retry of {transfer_id}")
            expect(row).to_have_count(0)  # settled: no longer a failure
            expect(success).to_have_text("2")
            expect(pending).to_have_text("0")
            expect(page.locator("#throughput-chart rect.settled-bar").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # Log out: the session ends on the server, so the cookie, if replayed, opens nothing.
            cookie = next(c for c in page.context.cookies() if c["name"] == "dompet_dashboard")
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(f"{base}/dashboard/login")
            replay = {"Cookie": f"{cookie['name']}={cookie['value']}"}
            assert http.get("/dashboard/api/summary", headers=replay).status_code == 401
        finally:
            browser.close()
    history = http.get("/transactions", headers=sender_auth).json()["result"]
    http.close()
    transfers = [e for e in history if e.get("transfer_id")]
    assert sorted(e["status"] for e in transfers) == ["SUCCESS", "SUCCESS"]


# -- every figure agrees with the ledger ---------------------------------------------------------
GOOD, REFUSED = 30, 2
"""The known load: transfers credited, and transfers to a blocked wallet (refunded)."""


def _ms(value: float | None) -> str:
    """The page's ms(): "-", "12 ms" (rounded half up, as Math.round) or "1.2 s"."""
    if value is None:
        return "-"
    return f"{math.floor(value + 0.5)} ms" if value < 1000 else f"{value / 1000:.1f} s"


async def _ledger(database_url: str) -> dict[str, Any]:
    """What the ledger says, read once the load is final: counts, latencies, attempts."""
    store = await open_store(database_url)
    try:
        for _ in range(600):  # bounded wait: every transfer credited or refunded
            counts = await store.transfer_counts()
            if counts[TransferStatus.PENDING] == 0:
                break
            await asyncio.sleep(0.1)
        samples = await store.settled_since(datetime.now(UTC) - timedelta(hours=1))
        troubled = await store.troubled_transfers()
    finally:
        await store.close()
    latencies = sorted(
        (s.settled_at - s.created_at).total_seconds() * 1000
        for s in samples
        if s.status == TransferStatus.SUCCESS
    )
    return {
        "counts": {status.value: n for status, n in counts.items()},
        "latency": {
            p: percentile(latencies, n) for p, n in (("p50", 50), ("p95", 95), ("p99", 99))
        },
        "minutes": {s.settled_at.astimezone(JAKARTA).strftime("%H:%M") for s in samples},
        "failed": {t.id: t for t in troubled if t.status is TransferStatus.FAILED},
    }


def test_every_figure_on_the_page_agrees_with_the_ledger(
    as_make_run: dict[str, Any], chromium_executable: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=60_000)
    base, env = as_make_run["base"], as_make_run["env"]
    http = httpx.Client(base_url=base, timeout=10)
    _sender, sender_auth = _wallet(http, "Sender", "081299990011")
    target, _ = _wallet(http, "Target", "081299990012")
    blocked, _ = _wallet(http, "Blocked", "081299990013")
    assert http.post("/topup", json={"amount": 1_000_000}, headers=sender_auth).status_code == 200
    _cli(env, "block-account", f"wallet:{blocked}")
    for n in range(GOOD + REFUSED):
        to = target if n < GOOD else blocked
        sent = http.post(
            "/transfer", json={"target_user": to, "amount": 1_000 + n}, headers=sender_auth
        )
        assert sent.status_code == 200, sent.text
    http.close()
    ledger = asyncio.run(_ledger(env["DATABASE_URL"]))
    assert ledger["counts"] == {"PENDING": 0, "SUCCESS": GOOD, "FAILED": REFUSED}
    attempts = sum(t.attempts for t in ledger["failed"].values())
    assert attempts == 2 * REFUSED  # SETTLE_MAX_ATTEMPTS=2, both failed

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/dashboard/login?next=/dashboard")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base}/dashboard")

            for status, count in ledger["counts"].items():
                expect(page.locator(f'#counts [data-key="{status}"] b')).to_have_text(str(count))
            expect(page.locator('#queue [data-key="pending (outbox)"] b')).to_have_text("0")
            expect(page.locator('#queue [data-key="oldest PENDING age"] b')).to_have_text("-")
            # The in-process worker did it all: credited, refunded, failed attempts.
            (row,) = page.locator("#workers tr[data-worker]").all()
            expect(row.locator(".settled")).to_have_text(str(GOOD))
            expect(row.locator(".refunded")).to_have_text(str(REFUSED))
            expect(row.locator(".failed-attempts")).to_have_text(str(attempts))
            expect(row).to_contain_text("inprocess")
            for key, value in ledger["latency"].items():
                expect(page.locator(f'#latency [data-key="{key}"] b')).to_have_text(_ms(value))
            rate = page.locator("#latency .tile").nth(3)
            found = re.search(r"\((\d+) min\)", rate.locator("span").inner_text())
            assert found is not None
            minutes = int(found.group(1))
            expect(rate.locator("b")).to_have_text(f"{round(GOOD / minutes, 2):g}")
            bars = page.locator("#throughput-chart")
            settled = [
                int(c)
                for c in bars.locator("rect.settled-bar").evaluate_all(
                    "rs => rs.map(r => r.dataset.count)"
                )
            ]
            failed = [
                int(c)
                for c in bars.locator("rect.failed-bar").evaluate_all(
                    "rs => rs.map(r => r.dataset.count)"
                )
            ]
            assert (sum(settled), sum(failed)) == (GOOD, REFUSED)
            # Times in the display zone: the bars' minutes, the failures' times, the header.
            titles = bars.locator("rect title").evaluate_all("ts => ts.map(t => t.textContent)")
            assert {t[:5] for t in titles} == ledger["minutes"], titles
            assert all(t[6:12] == "+07:00" for t in titles), titles
            expect(page.locator("#timezone")).to_have_text("times in Asia/Jakarta (+07:00)")
            for transfer_id, transfer in ledger["failed"].items():
                failure = page.locator(f'#failures tr[data-transfer="{transfer_id}"]')
                expect(failure.locator(".status")).to_have_text("FAILED")
                expect(failure).to_contain_text(f"Rp {transfer.amount:,}".replace(",", "."))
                expect(failure).to_contain_text("refunded")
                if transfer.next_attempt_at is not None:
                    local = transfer.next_attempt_at.astimezone(JAKARTA)
                    expect(failure).to_contain_text(local.strftime("%Y-%m-%d %H:%M:%S +07:00"))
            expect(page.locator("#invariants-badge")).to_have_text("All invariants hold")
            checked = page.locator("#invariants .muted").inner_text()
            assert checked.endswith("+07:00"), checked
            page.screenshot(path=str(ARTIFACTS / "dashboard-agrees.png"), full_page=True)
        finally:
            browser.close()
