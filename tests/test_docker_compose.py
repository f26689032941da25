"""docker-compose.yml, checked without a Docker engine.

Debian's ``docker-compose config`` (installed by .ci/run) interpolates and validates the file
against the Compose schema for each profile, with the secrets of a filled-in .env.example.
Then, on what it resolved: every Dompet service runs in production with settings Dompet
accepts; every command (and healthcheck) of a service built from the Dockerfile exists in the
image and parses as the CLI would parse it; every dependency waits for a healthcheck.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from dompet.cli import app
from dompet.config import Settings
from tests.support.servers import ServerUnavailable, require_or_skip

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROFILES = {
    "postgres": {"redis", "postgres", "postgres-api", "postgres-worker"},
    "mongodb": {"redis", "mongodb", "mongodb-api", "mongodb-worker"},
}
SECRETS = {
    "JWT_SECRET": "a-test-secret-of-forty-eight-characters-0123456789",
    "POSTGRES_PASSWORD": "testpassword0",
}


@pytest.fixture(scope="module")
def compose_binary() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        require_or_skip(
            ServerUnavailable("docker-compose not found (apt-get install docker-compose)")
        )
    return found


def env_file(tmp_path: Path, **values: str) -> Path:
    """.env.example with ``values`` filled in (an empty value stays empty)."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values and "=" in line else line)
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose(binary: str, env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` in a clean environment: only ``env`` provides values."""
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(env),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env.parent)},
    )


@pytest.fixture(scope="module")
def resolved(compose_binary: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it, with every secret set."""
    env = env_file(tmp_path_factory.mktemp("compose"), **SECRETS)
    done = compose(compose_binary, env, "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def dompet_services(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in config["services"].items():
        if service.get("image") == "dompet:latest" or "build" in service:
            yield name, service


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_validates_with_the_documented_env_file(
    compose_binary: str, tmp_path: Path, profile: str, resolved: dict[str, Any]
) -> None:
    env = env_file(tmp_path, **SECRETS, COMPOSE_PROFILES=profile)
    done = compose(compose_binary, env, "--profile", profile, "config", "-q")
    assert done.returncode == 0, done.stderr
    members = {n for n, s in resolved["services"].items() if profile in s.get("profiles", [])}
    assert members == PROFILES[profile]


def test_compose_refuses_to_start_without_the_jwt_secret(
    compose_binary: str, tmp_path: Path
) -> None:
    missing = "JWT_SECRET"
    env = env_file(tmp_path, **{**SECRETS, missing: ""})
    for profile in PROFILES:
        done = compose(compose_binary, env, "--profile", profile, "config", "-q")
        assert done.returncode != 0, profile
        assert f"set {missing}" in done.stderr, done.stderr


def test_every_dompet_service_runs_in_production_with_settings_dompet_accepts(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = dict(dompet_services(resolved))
    assert set(services) == {"postgres-api", "postgres-worker", "mongodb-api", "mongodb-worker"}
    for name, service in services.items():
        environment = service["environment"]
        assert environment["DOMPET_ENV"] == "production", name
        with monkeypatch.context() as patched:
            for key, value in environment.items():
                patched.setenv(key, str(value))
            settings = Settings()
        assert settings.env == "production"
        assert settings.redis_url == "redis://redis:6379/0"  # SAQ: the API enqueues
        if name.endswith("-api"):
            assert settings.worker_enabled is False  # the workers settle
        engine = name.split("-")[0]
        assert settings.database_url.startswith(engine), (name, settings.database_url)
    # The production check itself: a development or short JWT secret is refused.
    with monkeypatch.context() as patched:
        for key, value in services["postgres-api"]["environment"].items():
            patched.setenv(key, str(value))
        patched.setenv("JWT_SECRET", "short")
        with pytest.raises(ValueError, match="JWT_SECRET"):
            Settings()


def image_commands() -> set[str]:
    """What the Dockerfile's image can run: the project's entry points (installed by
    ``uv sync`` into /app/.venv/bin, on PATH) and the base image's sh and python."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN uv sync --frozen --no-dev$", dockerfile, re.MULTILINE)
    assert 'PATH="/app/.venv/bin:${PATH}"' in dockerfile
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {*scripts, "sh", "python"}


def argvs(command: list[str]) -> list[list[str]]:
    """The programs a command runs: itself, or each of ``sh -c "a && exec b"``."""
    if command[:2] != ["sh", "-c"]:
        return [command]
    found: list[list[str]] = [["sh"]]
    current: list[str] = []
    for word in [*shlex.split(command[2]), "&&"]:
        if word in ("&&", "||", ";"):
            found.append(current)
            current = []
        elif not (word == "exec" and not current):
            current.append(word)
    return found


def check_dompet_cli(argv: list[str]) -> None:
    """Parse ``dompet ...`` as the CLI would (options, types, bounds), without running it
    (the Click command Typer builds from ``dompet.cli.app``)."""
    group: Any = typer.main.get_command(app)
    parent = group.context_class(group, info_name="dompet")
    command = group.get_command(parent, argv[1])
    assert command is not None, f"no command {argv[1]!r} in `dompet`"
    command.make_context(argv[1], list(argv[2:]), parent=parent)


def test_every_command_exists_in_the_image_and_parses(resolved: dict[str, Any]) -> None:
    available = image_commands()
    dockerfile = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert default is not None
    commands = {"Dockerfile CMD": json.loads(default.group(1))}
    for name, service in dompet_services(resolved):
        commands[name] = service["command"]
        check = service.get("healthcheck", {}).get("test")
        if check:
            assert check[0] == "CMD", (name, check)
            assert check[1] in available, (name, check)
            if check[1:3] == ["python", "-c"]:
                compile(check[3], f"{name} healthcheck", "exec")
    seen = set()
    for name, command in commands.items():
        for argv in argvs(command):
            assert argv, name
            assert argv[0] in available, (name, argv)
            seen.add(tuple(argv[:2]))
            if argv[0] == "dompet":
                check_dompet_cli(argv)
    assert {("dompet", "migrate"), ("dompet", "serve"), ("dompet", "worker")} <= seen
    # The check can fail: an option the CLI lacks, a value out of its bounds.
    with pytest.raises(Exception, match="No such option: --no-such-option"):
        check_dompet_cli(["dompet", "worker", "--no-such-option"])
    with pytest.raises(Exception, match="greater than or equal to 1"):
        check_dompet_cli(["dompet", "serve", "--workers", "0"])


def test_every_dependency_waits_for_a_healthcheck(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, (name, needed)
            assert "healthcheck" in services[needed], needed
            assert set(services[needed]["profiles"]) >= set(service["profiles"]), (name, needed)
        if not name.endswith("-worker"):  # a worker has no port to ask; its API has
            assert "healthcheck" in service, name


def test_the_env_example_documents_every_variable_the_file_reads() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    }
    assert used <= documented, used - documented
    assert {"JWT_SECRET", "POSTGRES_PASSWORD"} <= used
    for secret in ("JWT_SECRET", "POSTGRES_PASSWORD"):
        assert f"\n{secret}=\n" in (ROOT / ".env.example").read_text()  # no value given away
