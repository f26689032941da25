"""Start an ASGI app through dompet.serving (as `dompet serve` does), watch its memory, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(p) for p in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its live descendants, plus what the children it
    has reaped used (a PostgreSQL backend that exited still counts)."""
    total = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if current == pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / CLOCK_TICKS


def listening_sockets(port: int) -> int:
    """TCP sockets in LISTEN state on ``port`` (IPv4), from /proc/net/tcp."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    found = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            found += 1
    return found


class Server:
    """One server (`python -m dompet.serving`, with its worker processes) on a free local port."""

    def __init__(
        self,
        app: str,
        env: dict[str, str],
        workers: int,
        log: Path,
        loop: str = "asyncio",
        writes: str = "one",
        logs: str = "uvicorn",
    ) -> None:
        """``logs="dompet"`` serves as `dompet serve` does: Dompet's logs at ``LOG_LEVEL``
        (from ``env``, default INFO: the JSON access line of every request on)."""
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "dompet.serving",
            app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--log-level",
            env.get("LOG_LEVEL", "info").lower() if logs == "dompet" else "warning",
            "--logs",
            logs,
            "--loop",
            loop,
            "--writes",
            writes,
        ]
        self.workers = workers
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._peak_kib = 0
        self._sampling = False
        self._thread: threading.Thread | None = None
        self._cpu_at_start = 0.0
        self.cpu_sampled = 0.0

    def wait_ready(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        """Until ``path`` answers and every worker listens: wrk connects in a burst, and the
        kernel can only spread connections over the workers whose sockets exist by then."""
        deadline = time.monotonic() + timeout
        while listening_sockets(self.port) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self._log.name}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:  # noqa: S310
                    if resp.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout:.0f}s; see {self._log.name}")

    def rss_kib(self) -> int:
        """Resident memory of the whole process tree now (master + workers)."""
        return sum(_status_kib(p, "VmRSS") for p in process_tree(self.proc.pid))

    def max_process_hwm_kib(self) -> int:
        """The largest peak RSS (VmHWM) of any one process of the tree so far."""
        return max(_status_kib(p, "VmHWM") for p in process_tree(self.proc.pid))

    def start_sampling(self) -> None:
        self._peak_kib = 0
        self._sampling = True
        self._cpu_at_start = cpu_seconds(self.proc.pid)

        def sample() -> None:
            while self._sampling:
                self._peak_kib = max(self._peak_kib, self.rss_kib())
                time.sleep(0.1)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop_sampling(self) -> float:
        """Stop sampling; the peak RSS of the process tree in MB while sampling (and its CPU
        seconds in :attr:`cpu_sampled`)."""
        self._sampling = False
        self.cpu_sampled = cpu_seconds(self.proc.pid) - self._cpu_at_start
        if self._thread is not None:
            self._thread.join()
        return max(self._peak_kib, self.rss_kib()) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
