"""No secret that anyone else knows (issue 19): generated, kept, shared by every process.

Configured secrets win; production refuses to start without them; otherwise a server
generates random ones on its first start and keeps them (a 0600 file beside an SQLite
database, the database itself otherwise), so tokens survive restarts, and processes starting
at the same moment all end up with the same ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from dompet.config import Settings
from dompet.container import Container
from dompet.security.kept_secrets import SUFFIX, SecretsFileError, keep_in_file, secrets_file
from tests.conftest import fast_settings
from tests.reliability.live import ApiServer, Process, process_env

SRC = Path(__file__).resolve().parents[2] / "src"


async def built_secrets(settings: Settings) -> tuple[str, str | None]:
    container = await Container.build(settings)
    try:
        return container.secrets.jwt, container.secrets.dashboard_session
    finally:
        await container.aclose()


async def test_generated_secrets_are_kept_and_survive_a_restart(
    database_url: str, engine_name: str
) -> None:
    settings = fast_settings(database_url, worker_enabled=False)
    first = await built_secrets(settings)
    assert len(first[0]) >= 64
    assert first[1] is not None
    assert len(first[1]) >= 64
    assert first[0] != first[1]
    assert await built_secrets(settings) == first  # the next start: the same ones
    path = secrets_file(database_url)
    if engine_name == "sqlite":
        assert path is not None
        assert path.name == "dompet.db" + SUFFIX
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["jwt_secret"] == first[0]
    else:
        assert path is None  # kept in the database: every machine using it shares them


async def test_a_token_survives_a_restart(sqlite_url: str) -> None:
    from tests.api.wallet_client import register
    from tests.reliability.helpers import AppContext

    settings = fast_settings(sqlite_url, worker_enabled=False)
    async with AppContext(settings) as app:
        wallet = await register(app.http)
    async with AppContext(settings) as restarted:
        response = await restarted.http.get("/transactions", headers=wallet.auth)
        assert response.status_code == 200


async def test_configured_secrets_win_and_nothing_is_generated(sqlite_url: str) -> None:
    settings = fast_settings(
        sqlite_url, jwt_secret="c" * 40, dashboard_session_secret="d" * 40, worker_enabled=False
    )
    assert await built_secrets(settings) == ("c" * 40, "d" * 40)
    path = secrets_file(sqlite_url)
    assert path is not None
    assert not path.exists()
    only_jwt = fast_settings(sqlite_url, jwt_secret="c" * 40, worker_enabled=False)
    assert await built_secrets(only_jwt) == ("c" * 40, None)  # dashboard key derived from it


def test_production_refuses_to_start_without_strong_secrets() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be set in production"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="JWT_SECRET must be at least 32"):
        Settings(env="production", jwt_secret="short-secret")
    with pytest.raises(ValidationError, match="DASHBOARD_SESSION_SECRET must be at least 32"):
        Settings(env="production", jwt_secret="p" * 40, dashboard_session_secret="short")
    with pytest.raises(ValidationError, match="JWT_SECRET must be set in production"):
        Settings(env="production", jwt_secret="")  # JWT_SECRET= (empty) is unset
    with pytest.raises(ValidationError, match="DASHBOARD_SECURE_COOKIE=false is refused"):
        Settings(env="production", jwt_secret="p" * 40, dashboard_secure_cookie=False)
    production = Settings(env="production", jwt_secret="p" * 40)
    assert production.dashboard_cookie_secure
    assert not Settings(env="development").dashboard_cookie_secure


def test_the_removed_dashboard_password_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", "dompet-" + "dev")
    with pytest.raises(ValidationError, match="dompet create-operator"):
        Settings()


def test_no_known_secret_is_left_in_the_source() -> None:
    """Nothing the server would accept as a secret is written in src/ (the old defaults)."""
    known = re.compile(r"dev-only-insecure|dompet-dev|change-me")
    found = [
        f"{path}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if known.search(line)
    ]
    assert found == []
    assert Settings().jwt_secret is None
    assert "dashboard_password" not in Settings.model_fields


def test_an_unsafe_or_broken_secrets_file_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / ("dompet.db" + SUFFIX)
    kept = keep_in_file(path)
    path.chmod(0o644)
    with pytest.raises(SecretsFileError, match="chmod 600"):
        keep_in_file(path)
    path.chmod(0o600)
    assert keep_in_file(path) == kept
    path.write_text('{"jwt_secret": "short"}')
    with pytest.raises(SecretsFileError, match="remove it"):
        keep_in_file(path)
    path.write_text("not json")
    with pytest.raises(SecretsFileError, match="not valid JSON"):
        keep_in_file(path)


def test_processes_starting_at_once_keep_one_set_of_secrets(tmp_path: Path) -> None:
    """Twelve processes race to create the file: all of them read the same secrets, and no
    temporary file is left behind."""
    path = tmp_path / "data" / ("dompet.db" + SUFFIX)
    program = (
        "import json, sys; from pathlib import Path; "
        "from dompet.security.kept_secrets import keep_in_file; "
        "print(json.dumps(keep_in_file(Path(sys.argv[1]))))"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", program, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(12)
    ]
    outputs = {racer.communicate(timeout=60)[0] for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(outputs) == 1
    assert os.listdir(path.parent) == [path.name]


@pytest.mark.concurrency
async def test_a_server_and_a_worker_started_together_share_the_secret(
    raw_database_url: str, tmp_path: Path
) -> None:
    """`dompet serve --workers 2` and a `dompet worker` on a fresh database, all at once:
    a token issued by one serving process is accepted by the other."""
    from dompet.storage import migrate

    await migrate(raw_database_url, mongodb_allow_standalone=True)
    env = process_env(raw_database_url, DOMPET_WORKER="0")
    api = ApiServer(env, tmp_path / "api.log")
    api.args += ["--workers", "2"]
    worker = Process(["worker", "--queue", "db"], env, tmp_path / "worker.log")
    worker.start()
    try:
        await api.start_and_wait()
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            body = {"first_name": "Rahasia", "phone_number": "0811255592", "pin": "246810"}
            assert (await http.post("/register", json=body)).status_code == 200
            login = await http.post("/login", json={"phone_number": "0811255592", "pin": "246810"})
            token = login.json()["result"]["access_token"]

        async def fresh_connection() -> int:  # the kernel spreads these over both processes
            async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
                answer = await http.get(
                    "/transactions", headers={"Authorization": f"Bearer {token}"}
                )
                return answer.status_code

        assert await asyncio.gather(*(fresh_connection() for _ in range(24))) == [200] * 24
        assert worker.alive, worker.log_tail()
    finally:
        worker.stop()
        api.stop()
