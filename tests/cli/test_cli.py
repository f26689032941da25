"""Every ``dompet`` command: --help, and the ones that finish on their own, for real."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from dompet.cli import app
from dompet.dataio.folder import read_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "example_data"
DOMPET = Path(sys.executable).with_name("dompet")
runner = CliRunner()


def all_commands() -> list[list[str]]:
    """Every command and sub-command the CLI has (so a new one is covered at once)."""
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        if path:
            found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_the_cli_has_the_issue_s_commands() -> None:
    names = {" ".join(path) for path in all_commands()}
    expected = {"serve", "worker", "migrate", "reconcile", "create-operator", "remove-operator"}
    assert expected | {"example-data load", "example-data dump", "example-data build"} <= names


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_installed_script_runs() -> None:
    done = subprocess.run([str(DOMPET), "--help"], capture_output=True, text=True, check=True)
    for name in ("serve", "worker", "migrate", "reconcile", "example-data"):
        assert name in done.stdout


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "LOG_JSON": "0"}


def test_migrate_then_load_reconcile_and_dump(env: dict[str, str], tmp_path: Path) -> None:
    first = runner.invoke(app, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "applied migrations" in first.output
    assert "up to date" in runner.invoke(app, ["migrate"], env=env).output

    loaded = runner.invoke(app, ["example-data", "load", str(EXAMPLE)], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "ledger OK" in " ".join(loaded.output.split())  # rich wraps long paths

    again = runner.invoke(app, ["example-data", "load", str(EXAMPLE)], env=env)
    assert again.exit_code == 1
    assert "not empty" in again.output

    ok = runner.invoke(app, ["reconcile"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "ledger OK" in ok.output

    out = tmp_path / "dump"
    dumped = runner.invoke(app, ["example-data", "dump", str(out)], env=env)
    assert dumped.exit_code == 0, dumped.output
    assert (out / "journals.jsonl").read_bytes() == (EXAMPLE / "journals.jsonl").read_bytes()


def test_reconcile_fails_on_a_tampered_balance(env: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    assert runner.invoke(app, ["example-data", "load", str(EXAMPLE)], env=env).exit_code == 0
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("UPDATE accounts SET balance = balance + 1 WHERE kind = 'wallet'")
    result = runner.invoke(app, ["reconcile"], env=env)
    assert result.exit_code == 1
    assert "VIOLATION" in result.output


def test_build_writes_a_loadable_folder(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "built"
    built = runner.invoke(app, ["example-data", "build", str(out)], env=env)
    assert built.exit_code == 0, built.output
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    loaded = runner.invoke(app, ["example-data", "load", str(out)], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "ledger OK" in " ".join(loaded.output.split())  # rich wraps long paths
    # The build is deterministic: it reproduces the committed example_data/ byte for byte.
    for name in sorted(p.name for p in EXAMPLE.iterdir()):
        assert (out / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


def test_example_data_is_refused_in_production(env: dict[str, str]) -> None:
    """Its users' PINs are published: it never goes into a production database."""
    production = {**env, "DOMPET_ENV": "production", "JWT_SECRET": "p" * 40}
    assert runner.invoke(app, ["migrate"], env=production).exit_code == 0
    result = runner.invoke(app, ["example-data", "load", str(EXAMPLE)], env=production)
    assert result.exit_code == 1
    assert "refused in production" in result.output
    database = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_loading_a_missing_folder_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    result = runner.invoke(app, ["example-data", "load", str(tmp_path / "nope")], env=env)
    assert result.exit_code == 1
    assert "manifest.json" in result.output


async def test_worker_settles_a_pending_transfer_and_stops_on_sigint(
    env: dict[str, str], tmp_path: Path
) -> None:
    import asyncio
    import os
    import signal

    from dompet.container import Container
    from dompet.domain.transfers import TransferStatus
    from dompet.services.wallet import NewUserRequest
    from dompet.storage import migrate
    from tests.conftest import fast_settings

    await migrate(env["DATABASE_URL"])
    settings = fast_settings(env["DATABASE_URL"], DOMPET_WORKER=False)
    container = await Container.build(settings)
    try:
        wallet = container.wallet
        a = await wallet.register(NewUserRequest("Ani", "", "081300000001", "", "123456"))
        b = await wallet.register(NewUserRequest("Bayu", "", "081300000002", "", "123456"))
        await wallet.top_up(a.id, 1000)
        entry = await wallet.transfer(a.id, b.id, 400, "kopi")
        pending = await container.store.get_transfer(entry.reference)
        assert pending is not None
        assert pending.status == TransferStatus.PENDING

        worker = subprocess.Popen(  # noqa: ASYNC220 (starts at once; never waited on here)
            [str(DOMPET), "worker"],
            env={**os.environ, **env, "WORKER_SWEEP_SECONDS": "0.05"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(600):
                settled = await container.store.get_transfer(entry.reference)
                assert settled is not None
                if settled.status != TransferStatus.PENDING or worker.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert settled is not None
            assert settled.status == TransferStatus.SUCCESS
            assert await container.store.balance(f"wallet:{b.id}") == 400
        finally:
            worker.send_signal(signal.SIGINT)
            output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, output
        assert "settlement worker" in output
    finally:
        await container.aclose()


def test_make_example_data_loads_into_database_url(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    url = f"sqlite:///{tmp_path / 'make.db'}"
    done = subprocess.run(
        ["make", "example-data", f"DATABASE_URL={url}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ledger OK" in done.stdout
    total = read_manifest(EXAMPLE).total
    assert f"{total}/{total}" in done.stdout  # the progress bar reached the end
