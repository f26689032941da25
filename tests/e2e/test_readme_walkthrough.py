"""The README's five-minute walk-through, run as written: a fresh clone, ``make run``, curl.

The repository's tracked files are copied into a temporary directory (a fresh clone: no .venv,
no data), ``make run PORT=<free port>`` is started there, the ```bash walkthrough block is
extracted from README.md, pointed at that port and run by bash in order; every ``# =>`` line
must match what the command before it printed (``"..."`` in the README matches any value).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = "@@@ step @@@"
README_API = "API=http://127.0.0.1:8000"


def walkthrough_block(text: str) -> str:
    """The body of the first fenced block opened with ```bash walkthrough."""
    start = text.index("```bash walkthrough\n") + len("```bash walkthrough\n")
    return text[start : text.index("\n```", start)]


def expectations(block: str) -> list[Any]:
    return [json.loads(line[5:]) for line in block.splitlines() if line.startswith("# => ")]


def instrument(block: str, port: int) -> str:
    """The block as a script that prints a marker where each ``# =>`` line stands."""
    assert README_API in block, "the walk-through must set API=http://127.0.0.1:8000"
    lines = ["set -euo pipefail"]
    for line in block.replace(README_API, f"API=http://127.0.0.1:{port}").splitlines():
        if line.startswith("# => "):
            lines.append(f"echo; echo '{MARK}'")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def matches(expected: Any, actual: Any) -> bool:
    if expected == "...":
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(type(expected) is type(actual) and expected == actual)


def test_matches_is_strict() -> None:
    assert matches({"a": "...", "b": [1]}, {"a": 5, "b": [1]})
    assert not matches({"a": "..."}, {"a": 5, "extra": 1})
    assert not matches({"b": [1]}, {"b": [1, 2]})
    assert not matches({"saldo": 1}, {"saldo": True})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fresh_clone(target: Path) -> Path:
    """The repository's tracked files (as a fresh clone has them) copied into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in listed.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, str]]]:
    """A fresh clone running ``make run PORT=<free port>`` with the default configuration."""
    if shutil.which("git") is None or not (ROOT / ".git").exists() or not shutil.which("make"):
        pytest.skip("needs a git checkout, git and make")
    clone = fresh_clone(tmp_path / "dompet")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOMPET", "DATABASE_URL", "VIRTUAL_ENV", "PORT", "HOST", "LOG_"))
    }
    port = free_port()
    log_path = tmp_path / "make-run.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        env=env,
        cwd=clone,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "make run did not serve: " + log_path.read_text()
            time.sleep(0.2)
        yield port, clone, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through needs curl")
def test_readme_walkthrough_works_as_written(server: tuple[int, Path, dict[str, str]]) -> None:
    """A fresh clone, ``make run``, then the README's walk-through, as a newcomer would."""
    port, clone, env = server
    block = walkthrough_block(README.read_text())
    expected = expectations(block)
    assert len(expected) >= 12
    result = subprocess.run(
        ["bash", "-c", instrument(block, port)],
        env=env,
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = result.stdout.split(MARK + "\n")
    assert len(outputs) == len(expected) + 1
    for number, (want, got) in enumerate(zip(expected, outputs, strict=False), 1):
        answer = json.loads(got)
        assert matches(want, answer), f"step {number}: README shows {want}, got {answer}"
    assert "ledger OK" in outputs[-1]
    assert 'dompet_money_moved_rupiah_total{kind="topup"} 500000.0' in outputs[-1]
