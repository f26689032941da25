"""Schemathesis against the app's own OpenAPI document, over real HTTP, on every engine.

Generated requests (valid, and invalid on purpose) hit every operation of both APIs, logged
in as a real user; no answer may be a 5xx, and every answer must conform to the document:
documented status code, content type, headers and body schema. Bounded: a fixed number of
examples per operation and a fixed seed, so a run is reproducible.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.live import ApiServer, process_env

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[ApiServer]:
    api = ApiServer(process_env(database_url), tmp_path / "api.log")
    await api.start_and_wait()
    try:
        yield api
    finally:
        api.stop()


async def logged_in_user(base_url: str) -> str:
    """A user with money and a savings account exist, so the happy paths are reachable."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        body = {"first_name": "Fuzz", "phone_number": "0811000777", "pin": "112233"}
        assert (await http.post("/register", json=body)).status_code == 200
        login = await http.post("/login", json={"phone_number": "0811000777", "pin": "112233"})
        token: str = login.json()["result"]["access_token"]
        topup = await http.post(
            "/topup", json={"amount": 10**9}, headers={"Authorization": f"Bearer {token}"}
        )
        assert topup.status_code == 200
        daftar = await http.post(
            "/daftar", json={"nama": "Fuzz", "nik": "3171000000000777", "no_hp": "0811000778"}
        )
        assert daftar.status_code == 200
        return token


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    server: ApiServer, tmp_path: Path, engine_name: str
) -> None:
    token = await logged_in_user(server.base_url)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{server.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "6" if engine_name == "sqlite" else "7",
        "--workers",
        "1",  # CPython 3.11's ast.parse (used by Hypothesis) is not thread-safe
        "--generation-database",
        "none",
        "--phases",
        "examples,coverage,fuzzing",
        "--no-color",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(  # noqa: ASYNC221 - a bounded child process, nothing else to do
        command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:] + "\n--- server log ---\n" + server.log_tail()
    selected = re.search(r"Operations:\s+(\d+) selected / (\d+) total", output)
    assert selected is not None, output[-3000:]
    assert selected.group(1) == selected.group(2), "every operation must be tested"
    assert int(selected.group(1)) >= 14, output[-3000:]
