"""pytest fixtures for throwaway servers.

Register from tests/conftest.py with ``pytest_plugins = ["tests.support.fixtures"]``.

* ``postgres_server`` (session): a private PostgreSQL cluster (:class:`PostgresServer`).
* ``postgres_db_url`` (function): a fresh, empty database on it; dropped afterwards.
* ``durable_postgres_server`` (session): another cluster, with fsync and synchronous commits
  on (the crash tests' server: see docs/reliability.md); ``durable_postgres_db_url`` as above.
* ``redis_server`` (session): a private redis-server (:class:`RedisServer`).
* ``mongo_server`` (session): a real replica set from ``MONGODB_TEST_URL`` (:class:`ExternalMongo`)
  or else the nx-27017 wire-protocol server started here (:class:`MongoWireServer`).
* ``mongo_url`` (function): a ``mongodb://`` URL naming a new database; dropped afterwards.
* ``chromium_executable`` (session): path of Debian's chromium.

When the software is not installed the test is skipped with a "SKIPPED: ..." reason,
or fails when ``DOMPET_REQUIRE_SERVERS=1`` (as in CI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers import (
    ExternalMongo,
    MongoWireServer,
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    chromium_path,
    new_mongo_database_name,
    require_or_skip,
)

MongoServer = ExternalMongo | MongoWireServer


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    except ServerUnavailable as exc:
        require_or_skip(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """``postgresql+asyncpg://`` URL of a new empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def durable_postgres_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start(tmp_path_factory.mktemp("postgres-durable"), durable=True)
    except ServerUnavailable as exc:
        require_or_skip(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def durable_postgres_db_url(durable_postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database on the durable cluster, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = durable_postgres_server.create_database(name)
    try:
        yield url
    finally:
        durable_postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    except ServerUnavailable as exc:
        require_or_skip(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = chromium_path()
    if path is None:
        require_or_skip(ServerUnavailable("Chromium not found (apt-get install chromium)"))
    return path


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    external = ExternalMongo.from_env()
    if external is not None:
        yield external
        return
    try:
        server = MongoWireServer.start(tmp_path_factory.mktemp("nx27017"))
    except ServerUnavailable as exc:
        require_or_skip(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo_url(mongo_server: MongoServer) -> Iterator[str]:
    """``mongodb://`` URL of a new, empty database, dropped after the test."""
    name = new_mongo_database_name()
    try:
        yield mongo_server.database_url(name)
    finally:
        mongo_server.drop_database(name)
