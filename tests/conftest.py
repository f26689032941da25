"""Shared fixtures: a fresh, migrated database on every engine, a store, and an API client.

``engine_url`` is parametrized over every engine, so contract and API tests run on each one:
SQLite always; PostgreSQL on a throwaway server the tests start (skipped, saying so, when the
binaries are missing; a failure in CI, where DOMPET_REQUIRE_SERVERS=1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from dompet.api.app import create_app
from dompet.config import Settings
from dompet.container import Container
from dompet.storage import migrate, open_store
from dompet.storage.port import LedgerStore

pytest_plugins = ["tests.support.fixtures"]

ENGINES = ["sqlite", "postgresql", "mongodb"]


def fast_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: cheap Argon2 parameters and a quick worker sweep."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "pin_hash_time_cost": 1,
        "pin_hash_memory_kib": 1024,
        "pin_hash_parallelism": 1,
        "worker_sweep_seconds": 0.05,
        "settle_retry_base_seconds": 0.05,
        "settle_retry_max_seconds": 0.2,
        "log_json": False,
        # Lets MongoDB run on the nx-27017 test server; no effect on a real replica set.
        "mongodb_allow_standalone": True,
        # Every in-process request comes from one address (httpx's ASGI transport), and
        # tests register many users: the per-client registration limit is tested on its own
        # (tests/reliability/test_client_limits.py). The login limits stay at their defaults.
        "registrations_per_client": 0,
        # Bursts of logins in tests are about the lock: the hashing bound is tested on its own
        # (tests/reliability/test_client_limits.py), so here it never answers 503.
        "pin_hash_concurrency": 64,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def raw_database_url(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of the engine under test (not migrated)."""
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'dompet.db'}"
    if engine_name == "mongodb":
        mongo: str = request.getfixturevalue("mongo_url")
        return mongo
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture(autouse=True)
def _skip_concurrency_on_wire_server(request: pytest.FixtureRequest) -> None:
    """Tests marked ``concurrency`` need a real MongoDB replica set, not nx-27017."""
    callspec = getattr(request.node, "callspec", None)
    engine = callspec.params.get("engine_name") if callspec is not None else None
    if engine != "mongodb" or request.node.get_closest_marker("concurrency") is None:
        return
    if not request.getfixturevalue("mongo_server").is_real:
        pytest.skip(
            "SKIPPED: MongoDB concurrency test needs a real replica set (set MONGODB_TEST_URL); "
            "the nx-27017 wire-protocol server's transactions are not safe under concurrency"
        )


@pytest.fixture
async def database_url(raw_database_url: str) -> str:
    """A fresh database with every migration applied."""
    await migrate(raw_database_url, mongodb_allow_standalone=True)
    return raw_database_url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[LedgerStore]:
    opened = await open_store(database_url, mongodb_allow_standalone=True)
    try:
        yield opened
    finally:
        await opened.close()


ClientFactory = Callable[..., "AsyncClientContext"]


class AsyncClientContext:
    """An httpx client on the real app (lifespan included: store, worker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.container: Container | None = None
        self._client: httpx.AsyncClient | None = None
        self._lifespan: AbstractAsyncContextManager[object] | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        self.container = await Container.build(self.settings)
        app = create_app(container=self.container)
        self._lifespan = app.router.lifespan_context(app)
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dompet.test"
        )
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.aclose()
        assert self._lifespan is not None
        await self._lifespan.__aexit__(None, None, None)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return fast_settings(database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncClientContext(settings) as http:
        yield http
