"""`dompet serve --workers N`: real processes, each worker on its own SO_REUSEPORT socket.

A worker is told apart by its X-Request-ID: a random 16-hex prefix per process + a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dompet.serving import bind_socket
from tests.reliability.live import Process, process_env
from tests.support.servers import find_free_port

HOST = "127.0.0.1"
BOUND = 60.0
"""Upper bound of every wait (start-up, exit): a limit on a loop, not an assertion on time."""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found.extend(
                    int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                )
    return found


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + BOUND
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _port_is_free(port: int) -> bool:
    """Nobody listens on the port: a bind without SO_REUSEPORT succeeds."""
    try:
        bind_socket(HOST, port, reuse_port=False).close()
    except OSError:
        return False
    return True


def _request_id(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    rid = resp.getheader("x-request-id")
    assert rid is not None
    assert len(rid) == 32
    return rid


def _prefix_of_new_connection(port: int) -> str | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        return _request_id(conn)[:16]
    except OSError:
        return None
    finally:
        conn.close()


def _wait_for_prefixes(server: Process, port: int, count: int, seen: set[str]) -> set[str]:
    """Open fresh connections until `count` distinct worker prefixes not in `seen` answered.

    Ready means listening: the kernel only balances over workers whose socket listens.
    """
    found: set[str] = set()
    deadline = time.monotonic() + BOUND
    while len(found) < count:
        assert server.alive, server.log_tail()
        assert time.monotonic() < deadline, f"workers not all serving:\n{server.log_tail()}"
        prefix = _prefix_of_new_connection(port)
        if prefix is None:
            time.sleep(0.05)
        elif prefix not in seen:
            found.add(prefix)
    return found


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, made once for this module (each test gets a copy)."""
    path = tmp_path_factory.mktemp("serving") / "dompet.db"
    subprocess.run(
        [sys.executable, "-m", "dompet.cli", "migrate"],
        env=process_env(f"sqlite:///{path}"),
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def database_env(migrated_database: Path, tmp_path: Path) -> dict[str, str]:
    """Environment of `dompet serve` on a fresh copy of the migrated database, no settlement."""
    path = tmp_path / "dompet.db"
    shutil.copyfile(migrated_database, path)
    return process_env(f"sqlite:///{path}", DOMPET_WORKER="0")


@pytest.fixture
def serve(database_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Process, int, int]]:
    """`dompet serve --workers 2` on a free port: (process, port, worker count) once all serve."""
    port = find_free_port()
    server = Process(
        ["serve", "--host", HOST, "--port", str(port), "--workers", "2"],
        database_env,
        tmp_path / "serve.log",
    )
    server.start()
    try:
        yield server, port, 2
    finally:
        server.stop()


def test_two_workers_share_simultaneous_keep_alive_connections(
    serve: tuple[Process, int, int],
) -> None:
    """32 keep-alive connections opened at once are spread over both workers, then SIGTERM to
    the supervisor alone stops every worker and frees the port.

    With one shared listening socket (uvicorn's --workers) one process typically accepts the
    whole burst.  With SO_REUSEPORT the kernel picks a socket by a hash of each connection's
    4-tuple, so a worker's share is ~Binomial(32, 1/2): it gets fewer than 4 with probability
    2 * sum(C(32, k), k <= 3) / 2**32 ~= 2.6e-6.
    """
    server, port, workers = serve
    _wait_for_prefixes(server, port, workers, set())
    assert server.proc is not None
    worker_pids = [p for p in _children(server.proc.pid) if "spawn_main" in _cmdline(p)]
    assert len(worker_pids) == workers

    conns = [http.client.HTTPConnection(HOST, port, timeout=10) for _ in range(32)]
    try:
        for conn in conns:
            conn.connect()  # all 32 accepted before any request is sent
        prefixes = Counter(_request_id(conn)[:16] for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    assert len(prefixes) == workers, prefixes
    assert min(prefixes.values()) >= 4, prefixes

    os.kill(server.proc.pid, signal.SIGTERM)  # the supervisor only, not its process group
    assert server.proc.wait(timeout=BOUND) == 0, server.log_tail()
    assert [p for p in worker_pids if _alive(p)] == []  # joined before the supervisor exits
    assert _port_is_free(port)


def test_a_dead_worker_is_replaced_and_workers_stop_when_the_supervisor_is_killed(
    serve: tuple[Process, int, int],
) -> None:
    server, port, workers = serve
    first = _wait_for_prefixes(server, port, workers, set())
    assert server.proc is not None
    worker_pids = [p for p in _children(server.proc.pid) if "spawn_main" in _cmdline(p)]
    os.kill(worker_pids[0], signal.SIGKILL)
    _wait_for_prefixes(server, port, 1, first)  # a new worker process answers
    replacements = [p for p in _children(server.proc.pid) if "spawn_main" in _cmdline(p)]
    assert len(replacements) == workers
    assert worker_pids[0] not in replacements

    os.kill(server.proc.pid, signal.SIGKILL)  # no goodbye: workers must notice by themselves
    server.proc.wait(timeout=BOUND)
    assert _wait_gone(replacements) == []
    assert _port_is_free(port)


def test_one_worker_serves_in_process(database_env: dict[str, str], tmp_path: Path) -> None:
    port = find_free_port()
    server = Process(
        ["serve", "--host", HOST, "--port", str(port)], database_env, tmp_path / "1.log"
    )
    server.start()
    try:
        prefix = _wait_for_prefixes(server, port, 1, set())
        assert _prefix_of_new_connection(port) in prefix  # one process answers every connection
        assert server.proc is not None
        assert _children(server.proc.pid) == []  # plain uvicorn.run: no worker processes
        os.kill(server.proc.pid, signal.SIGTERM)
        # uvicorn.run re-raises the signal once it has shut down gracefully
        assert server.proc.wait(timeout=BOUND) == -signal.SIGTERM, server.log_tail()
    finally:
        server.stop()


def test_a_taken_port_fails_fast_with_exit_code_3(tmp_path: Path) -> None:
    """Even a server that itself uses SO_REUSEPORT is not silently joined on its port."""
    with bind_socket(HOST, 0, reuse_port=True) as taken:
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *(sys.executable, "-m", "dompet.serving", "bench.bare:create_app"),
                *("--host", HOST, "--port", str(port), "--workers", "2"),
            ],
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot bind" in result.stderr


async def test_accepted_connections_get_tcp_nodelay_on_the_asyncio_loop() -> None:
    """uvicorn issue #3149: a pre-bound socket without proto=IPPROTO_TCP loses TCP_NODELAY on
    asyncio's loop (a ~40 ms delayed-ACK stall per keep-alive request)."""
    sock = bind_socket(HOST, 0, reuse_port=True)
    assert sock.proto == socket.IPPROTO_TCP
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(HOST, sock.getsockname()[1])
        assert await asyncio.wait_for(accepted, BOUND) != 0
        writer.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# -- metrics that add up over the workers --------------------------------------------------------
def _call(
    port: int, method: str, path: str, body: dict[str, object] | None = None, token: str = ""
) -> tuple[str, str]:
    """One request on a fresh connection (the kernel picks the worker): (worker prefix, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200, text
        return (resp.getheader("x-request-id") or "")[:16], text
    finally:
        conn.close()


def _money_in_metrics(text: str) -> dict[str, float]:
    wanted = {
        ("dompet_money_moved_rupiah_total", "topup"),
        ("dompet_money_moved_rupiah_total", "pay"),
        ("dompet_money_movements_total", "pay"),
    }
    found = {
        f"{s.name}{{{s.labels.get('kind')}}}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if (s.name, s.labels.get("kind")) in wanted
    }
    found["pay requests"] = sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "dompet_http_requests_total"
        and s.labels == {"method": "POST", "route": "/pay", "status": "200"}
    )
    return found


async def _ledger_money(database_url: str) -> dict[str, float]:
    from dompet.domain.ledger import SystemAccount
    from dompet.storage import open_store

    store = await open_store(database_url)
    try:
        sums = (await store.snapshot()).posting_sums
    finally:
        await store.close()
    return {
        "dompet_money_moved_rupiah_total{topup}": -sums.get(SystemAccount.TOPUP, 0),
        "dompet_money_moved_rupiah_total{pay}": sums.get(SystemAccount.PAYMENTS, 0),
    }


def _metrics_dir_of(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert len(found) == 1
    return found[0].split(b"=", 1)[1].decode()


def test_metrics_of_two_workers_add_up_to_the_ledger(
    serve: tuple[Process, int, int], database_env: dict[str, str]
) -> None:
    """Every scrape, whichever worker answers it, reports the money counters of all workers
    (equal to the ledger's sums), also after a worker was killed and replaced; the metrics
    directory is private to the run and removed when the server stops."""
    server, port, workers = serve
    _wait_for_prefixes(server, port, workers, set())
    assert server.proc is not None
    worker_pids = [p for p in _children(server.proc.pid) if "spawn_main" in _cmdline(p)]
    metrics_dir = Path(_metrics_dir_of(worker_pids[0]))
    assert {_metrics_dir_of(p) for p in worker_pids} == {str(metrics_dir)}
    assert metrics_dir.stat().st_mode & 0o077 == 0  # private to the server's user

    payers: Counter[str] = Counter()
    pays = 0

    def load(users: range) -> None:
        nonlocal pays
        for i in users:
            phone = f"08119{i:06d}"
            _call(
                port,
                "POST",
                "/register",
                {"first_name": "M", "phone_number": phone, "pin": "123456"},
            )
            login = json.loads(
                _call(port, "POST", "/login", {"phone_number": phone, "pin": "123456"})[1]
            )
            token = login["result"]["access_token"]
            _call(port, "POST", "/topup", {"amount": 100_000 + i}, token)
            for k in range(3):
                worker, _ = _call(port, "POST", "/pay", {"amount": 1_000 + i + k}, token)
                payers[worker] += 1
                pays += 1

    def scrapes_agree() -> set[str]:
        ledger = asyncio.run(_ledger_money(database_env["DATABASE_URL"]))
        scraped_by: set[str] = set()
        for _ in range(12):
            worker, text = _call(port, "GET", "/metrics")
            scraped_by.add(worker)
            assert _money_in_metrics(text) == {
                **ledger,
                "dompet_money_movements_total{pay}": pays,
                "pay requests": pays,
            }, worker
        return scraped_by

    load(range(8))
    assert len(payers) == workers, payers  # both took payments (else: p = 2**-23)
    assert len(scrapes_agree()) == workers

    dead = worker_pids[0]
    assert list(metrics_dir.glob(f"gauge_livemostrecent_{dead}.db"))  # it answered a scrape
    os.kill(dead, signal.SIGKILL)
    _wait_for_prefixes(server, port, 1, set(payers))
    assert not list(metrics_dir.glob(f"gauge_*_{dead}.db"))  # marked dead: its gauges went
    assert list(metrics_dir.glob(f"counter_{dead}.db"))  # its counts stay in the totals
    load(range(8, 12))
    assert len(scrapes_agree()) == workers

    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=BOUND) == 0, server.log_tail()
    assert not metrics_dir.exists()


def test_the_next_supervisor_removes_a_killed_ones_metrics_directory(
    serve: tuple[Process, int, int], database_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL leaves no chance to clean up: the next `dompet serve --workers N` removes the
    directory of a supervisor that no longer runs, and keeps its own."""
    server, port, workers = serve
    _wait_for_prefixes(server, port, workers, set())
    assert server.proc is not None
    (worker,) = [p for p in _children(server.proc.pid) if "spawn_main" in _cmdline(p)][:1]
    stale = Path(_metrics_dir_of(worker))
    assert stale.name.startswith(f"dompet-metrics-{server.proc.pid}-")
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=BOUND)
    assert stale.exists()

    again = find_free_port()
    second = Process(
        ["serve", "--host", HOST, "--port", str(again), "--workers", "2"],
        database_env,
        tmp_path / "second.log",
    )
    second.start()
    try:
        _wait_for_prefixes(second, again, 2, set())
        assert second.proc is not None
        (worker,) = [p for p in _children(second.proc.pid) if "spawn_main" in _cmdline(p)][:1]
        assert Path(_metrics_dir_of(worker)).exists()
        assert not stale.exists()
    finally:
        second.stop()
