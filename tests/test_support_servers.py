"""Real tests of the throwaway-server helpers in tests/support."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    chromium_path,
    find_free_port,
    require_or_skip,
)


def test_find_free_port_is_bindable() -> None:
    port = find_free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_require_or_skip_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOMPET_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^SKIPPED: thing not installed"):
        require_or_skip(ServerUnavailable("thing not installed"))


def test_require_or_skip_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMPET_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match="thing not installed"):
        require_or_skip(ServerUnavailable("thing not installed"))


def test_chromium_path_is_executable_or_none() -> None:
    path = chromium_path()
    assert path is None or Path(path).is_file()


@pytest.mark.postgres
async def test_the_durable_postgres_syncs_its_commits(
    durable_postgres_server: PostgresServer,
) -> None:
    conn = await asyncpg.connect(durable_postgres_server.url(driver=None))
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            assert await conn.fetchval(f"SHOW {setting}") == "on", setting
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_create_connect_drop(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("support_check")
    assert url == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_server.port}/support_check"

    conn = await asyncpg.connect(postgres_server.url("support_check", driver=None))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW max_connections") == "200"
    finally:
        await conn.close()

    # The SQLAlchemy URL works as-is with the async engine.
    engine = create_async_engine(url)
    try:
        async with engine.connect() as sa_conn:
            assert (await sa_conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()

    postgres_server.drop_database("support_check")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(postgres_server.url("support_check", driver=None))


@pytest.mark.postgres
async def test_postgres_drop_database_with_open_connection(
    postgres_server: PostgresServer,
) -> None:
    postgres_server.create_database("support_busy")
    conn = await asyncpg.connect(postgres_server.url("support_busy", driver=None))
    try:
        postgres_server.drop_database("support_busy")  # WITH (FORCE) kicks the session
        postgres_server.drop_database("support_busy")  # IF EXISTS: idempotent
    finally:
        conn.terminate()


@pytest.mark.postgres
def test_postgres_sql_errors_are_reported(postgres_server: PostgresServer) -> None:
    with pytest.raises(RuntimeError, match="42601"):
        postgres_server.execute("SELEKT 1")
    postgres_server.execute("SELECT 1")  # the server is still fine afterwards


@pytest.mark.postgres
async def test_postgres_db_url_fixture(postgres_db_url: str) -> None:
    engine = create_async_engine(postgres_db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x int)"))
            await conn.execute(text("INSERT INTO t VALUES (41)"))
            assert (await conn.execute(text("SELECT x + 1 FROM t"))).scalar_one() == 42
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_postgres_server_stop_cleans_up(tmp_path: Path) -> None:
    with PostgresServer.start(tmp_path) as server:
        assert server.proc is not None
        pid = server.proc.pid
        base_dir = server.base_dir
        server.execute("SELECT 1")
    assert server.proc is None
    assert not base_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.redis
async def test_redis_ping_set_get(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    async with aioredis.from_url(redis_server.url) as client:
        assert await client.ping() is True  # type: ignore[misc]
        await client.set("dompet:support", "ok")
        assert await client.get("dompet:support") == b"ok"
        await client.delete("dompet:support")


@pytest.mark.redis
async def test_redis_concurrent_clients(redis_server: RedisServer) -> None:
    async def incr() -> None:
        async with aioredis.from_url(redis_server.url) as client:
            await client.incr("dompet:counter")

    await asyncio.gather(*(incr() for _ in range(20)))
    async with aioredis.from_url(redis_server.url) as client:
        assert await client.get("dompet:counter") == b"20"
        await client.delete("dompet:counter")
