"""The dashboard in a real headless Chromium (Debian's), driven by Playwright.

The real app runs under uvicorn (`dompet serve`) without its in-process worker, so a transfer
stays PENDING on screen until a separate `dompet worker` process settles it. A transfer to a
blocked wallet fails its first attempt and would wait an hour; the operator unblocks the
wallet and presses "Retry now". Screenshots go to artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import find_free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`dompet serve` (no in-process worker) on a free port; a migrated SQLite database."""
    database_url = f"sqlite:///{tmp_path / 'dompet.db'}"
    env = _env(database_url)
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
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        {**env, "DOMPET_WORKER": "0"},
        tmp_path / "server.log",
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
