"""The README's five-minute walk-through, run as written against a real ``dompet serve``.

The ```bash walkthrough block is extracted from README.md, pointed at a server on a free port
(fresh SQLite database) and run by bash in order; every ``# =>`` line must match what the
command before it printed (``"..."`` in the README matches any value).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOMPET = Path(sys.executable).with_name("dompet")
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``dompet migrate`` then ``dompet serve`` on a fresh SQLite file and a free port."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dompet.db'}",
        "DOMPET_ENV": "test",
        "PIN_HASH_TIME_COST": "1",
        "PIN_HASH_MEMORY_KIB": "1024",
        "PIN_HASH_PARALLELISM": "1",
        "LOG_JSON": "0",
    }
    subprocess.run([str(DOMPET), "migrate"], env=env, check=True, cwd=ROOT)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(DOMPET), "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dompet serve did not come up"
            time.sleep(0.1)
        yield port, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through needs curl")
def test_readme_walkthrough_works_as_written(server: tuple[int, dict[str, str]]) -> None:
    port, env = server
    block = walkthrough_block(README.read_text())
    expected = expectations(block)
    assert len(expected) >= 12
    result = subprocess.run(
        ["bash", "-c", instrument(block, port)],
        env=env,
        cwd=ROOT,
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
