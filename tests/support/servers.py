"""Throwaway PostgreSQL / Redis servers for the test-suite.

Each server runs on 127.0.0.1 only, on a free port, with its data in a private
temporary directory that is removed by ``stop()``.  Servers are tuned for speed
(no fsync, no persistence), except ``PostgresServer.start(..., durable=True)``: the
default durability settings (fsync, synchronous_commit, full_page_writes on), for the
crash and fault tests.  The fault tests also kill and restart servers (``crash()``,
``halt()``, ``start_again()``): the data directory and the port stay the same.

Missing binaries raise :class:`ServerUnavailable`; pass it to
:func:`require_or_skip`, which skips the test -- or fails it when
``DOMPET_REQUIRE_SERVERS=1`` (CI).  A server that is installed but fails to
start raises :class:`ServerStartError` (a real error, never a skip).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self

import asyncpg
import pytest

__all__ = [
    "ExternalMongo",
    "MongoWireServer",
    "PostgresServer",
    "RedisServer",
    "ServerStartError",
    "ServerUnavailable",
    "chromium_path",
    "find_free_port",
    "require_or_skip",
]

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_PORT_ATTEMPTS = 3


class ServerUnavailable(Exception):
    """The server software is not installed on this machine."""


class ServerStartError(RuntimeError):
    """The server software is installed but the server could not be started."""


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def require_or_skip(exc: ServerUnavailable) -> NoReturn:
    """Skip the current test because of ``exc`` -- or fail it when servers are required."""
    if os.environ.get("DOMPET_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{exc} (DOMPET_REQUIRE_SERVERS=1, so this is an error, not a skip)")
    pytest.skip(f"SKIPPED: {exc}")


def chromium_path() -> str | None:
    """Path of Debian's chromium binary, or None when it is not installed."""
    default = Path("/usr/bin/chromium")
    if default.is_file() and os.access(default, os.X_OK):
        return str(default)
    return shutil.which("chromium") or shutil.which("chromium-browser")


# --------------------------------------------------------------------------- helpers

_running: set[_ManagedServer] = set()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - safety net only
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_log(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:] if text.strip() else "(empty log)"


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send ``sig``; after ``timeout`` SIGKILL the process group. Always reaps ``proc``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # The server was started in its own session: kill anything left in its group
    # (e.g. postgres backends after a failed shutdown).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class _ManagedServer:
    proc: subprocess.Popen[bytes] | None
    base_dir: Path
    _log_file: IO[bytes] | None

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _kill(self) -> None:
        """Kill a half-started server, keeping its directory (used between port retries)."""
        if self.proc is not None:
            _terminate(self.proc, signal.SIGKILL, 0)
            self.proc = None
        _running.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup(self) -> None:
        _running.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self.base_dir, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> (15,) or (9, 6)
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))


def _find_postgres_bin() -> Path:
    candidates = [
        d
        for d in Path("/usr/lib/postgresql").glob("*/bin")
        if (d / "initdb").is_file() and (d / "postgres").is_file()
    ]
    if candidates:
        return max(candidates, key=_version_key)
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = Path(initdb).resolve().parent
        if (bin_dir / "postgres").is_file():
            return bin_dir
    raise ServerUnavailable("PostgreSQL binaries not found (apt-get install postgresql)")


def _postgres_os_user() -> pwd.struct_passwd:
    """The unprivileged OS user the server runs as when we are root."""
    for name in ("postgres", "dompet-pg"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "dompet-pg"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam("dompet-pg")
    except KeyError:
        raise ServerStartError(
            "running as root and no 'postgres' OS user; creating 'dompet-pg' failed: "
            + (result.stderr.strip() or f"exit code {result.returncode}")
        ) from None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_execute(port: int, sql: str | None, user: str, dbname: str, timeout: float) -> None:
    """Connect with asyncpg (trust auth), optionally run ``sql``, disconnect.

    Runs on its own thread with its own event loop, so it is safe to call from sync fixtures
    while a test's loop is running. Raises asyncpg/OS errors.
    """

    async def run() -> None:
        conn = await asyncpg.connect(
            host=HOST, port=port, user=user, database=dbname, timeout=timeout
        )
        try:
            if sql is not None:
                await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` still runs (a server's, started in a session of
    its own: backends of a postmaster killed alone stay in its group until they exit)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer(_ManagedServer):
    """A private PostgreSQL cluster: ``PostgresServer.start(tmpdir)`` ... ``.stop()``."""

    superuser = "postgres"

    def __init__(
        self,
        bin_dir: Path,
        base_dir: Path,
        port: int,
        durable: bool = False,
        run_as: pwd.struct_passwd | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "postgres.log"
        self.port = port
        self.host = HOST
        self.durable = durable
        self.run_as = run_as
        self._killed_group: int | None = None
        self.proc = None
        self._log_file = None

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def start(cls, tmpdir: str | os.PathLike[str], *, durable: bool = False) -> PostgresServer:
        """A new cluster; ``durable``: with fsync, synchronous commits and full-page writes
        (PostgreSQL's defaults) instead of the fast, crash-unsafe settings."""
        bin_dir = _find_postgres_bin()
        as_root = os.geteuid() == 0
        run_as = _postgres_os_user() if as_root else None
        # As root the server runs as another user, who must be able to reach the
        # data directory: pytest's tmp dirs live under a 0700 root-owned directory,
        # so use a fresh directory directly under the system temp dir instead.
        base_dir = Path(
            tempfile.mkdtemp(prefix="dompet-pg-", dir=None if as_root else os.fspath(tmpdir))
        )
        last_error: ServerStartError | None = None
        for _ in range(_PORT_ATTEMPTS):
            server = cls(bin_dir, base_dir, find_free_port(), durable, run_as)
            try:
                if not server.data_dir.exists():
                    server._initdb(run_as)
                server._launch(run_as)
            except ServerStartError as exc:
                server._kill()
                last_error = exc
                if "could not bind" in str(exc) or "already in use" in str(exc):
                    continue  # lost the race for the port: try another one
                break
            else:
                return server
        shutil.rmtree(base_dir, ignore_errors=True)
        assert last_error is not None
        raise last_error

    def _env(self, run_as: pwd.struct_passwd | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if run_as is not None:
            env["HOME"] = str(self.base_dir)
            env["USER"] = env["LOGNAME"] = run_as.pw_name
        return env

    def _initdb(self, run_as: pwd.struct_passwd | None) -> None:
        if run_as is not None:
            os.chown(self.base_dir, run_as.pw_uid, run_as.pw_gid)
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            *([] if self.durable else ["--no-sync"]),
        ]
        result = subprocess.run(
            cmd,
            cwd=self.base_dir,
            env=self._env(run_as),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "local replication all trust\n"
            "host replication all 127.0.0.1/32 trust\n"
        )
        if run_as is not None:
            os.chown(hba, run_as.pw_uid, run_as.pw_gid)

    def _launch(self, run_as: pwd.struct_passwd | None) -> None:
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.base_dir),
            "-c",
            f"listen_addresses={HOST}",
            *(
                ["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"]
                if self.durable
                else [
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
            "-c",
            "log_min_messages=warning",
        ]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _cleanup
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.base_dir,
            env=self._env(run_as),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
        _running.add(self)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"postgres exited with code {self.proc.returncode} during start-up:\n"
                    + _read_log(self.log_path)
                )
            if _port_open(self.port):
                try:
                    _pg_execute(self.port, None, self.superuser, "postgres", timeout=2.0)
                except (asyncpg.PostgresError, OSError) as exc:  # e.g. 57P03 "starting up"
                    last = exc
                else:
                    return
            time.sleep(0.05)
        raise ServerStartError(
            f"postgres did not accept connections on {HOST}:{self.port} within "
            f"{START_TIMEOUT:.0f}s (last error: {last}):\n" + _read_log(self.log_path)
        )

    def stop(self) -> None:
        """Shut the server down (fast shutdown, then SIGKILL) and delete its files."""
        if self.proc is not None:
            # SIGTERM is postgres' "smart" shutdown, which waits for clients to
            # disconnect; SIGINT ("fast") aborts open sessions and exits cleanly.
            _terminate(self.proc, signal.SIGINT, STOP_TIMEOUT)
            self.proc = None
        self._cleanup()

    # -- faults (the files and the port are kept) --------------------------------------

    def crash(self, *, postmaster_only: bool = False) -> None:
        """SIGKILL: the whole server (postmaster and backends, as the OOM killer or a machine
        that stops would), or only the postmaster (its backends then notice and exit by
        themselves, as after a ``kill -9`` of the postmaster's pid)."""
        assert self.proc is not None
        self._killed_group = self.proc.pid
        if postmaster_only:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        else:
            _terminate(self.proc, signal.SIGKILL, 0)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def halt(self) -> None:
        """A fast shutdown (SIGINT: sessions are ended, the server stops cleanly)."""
        assert self.proc is not None
        _terminate(self.proc, signal.SIGINT, STOP_TIMEOUT)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def start_again(self) -> None:
        """Start the same cluster on the same port (crash recovery runs after ``crash``).

        Backends of a postmaster killed alone may linger a moment; PostgreSQL refuses to
        start while they hold its shared memory, so they are waited for (then killed)."""
        assert self.proc is None
        group, self._killed_group = self._killed_group, None
        deadline = time.monotonic() + STOP_TIMEOUT
        while group is not None and _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group is not None and _group_alive(group):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
            time.sleep(0.2)
        self._launch(self.run_as)

    # -- databases ---------------------------------------------------------------------

    def url(self, dbname: str = "postgres", driver: str | None = "asyncpg") -> str:
        """SQLAlchemy URL (``postgresql+asyncpg://...``); ``driver=None`` gives a plain DSN."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.superuser}@{HOST}:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run ``sql`` as the superuser, discarding results; RuntimeError on an SQL error."""
        try:
            _pg_execute(self.port, sql, self.superuser, dbname, timeout=30.0)
        except asyncpg.PostgresError as exc:
            raise RuntimeError(f"{sql!r} failed: {exc} [{exc.sqlstate}]") from exc

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns its asyncpg SQLAlchemy URL."""
        self.execute(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name``, disconnecting any open sessions."""
        self.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


# --------------------------------------------------------------------------- Redis


def _find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.access("/usr/bin/redis-server", os.X_OK):
        return "/usr/bin/redis-server"
    raise ServerUnavailable("redis-server binary not found (apt-get install redis-server)")


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(_ManagedServer):
    """A private redis-server: ``RedisServer.start(tmpdir)`` ... ``.stop()``."""

    def __init__(self, binary: str, base_dir: Path, port: int) -> None:
        self.binary = binary
        self.base_dir = base_dir
        self.log_path = base_dir / "redis.log"
        self.port = port
        self.host = HOST
        self.proc = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @classmethod
    def start(cls, tmpdir: str | os.PathLike[str]) -> RedisServer:
        binary = _find_redis_server()
        base_dir = Path(tempfile.mkdtemp(prefix="dompet-redis-", dir=os.fspath(tmpdir)))
        last_error: ServerStartError | None = None
        for _ in range(_PORT_ATTEMPTS):
            server = cls(binary, base_dir, find_free_port())
            try:
                server._launch()
            except ServerStartError as exc:
                server._kill()
                last_error = exc
                if "in use" in str(exc) or "bind" in str(exc).lower():
                    continue
                break
            else:
                return server
        shutil.rmtree(base_dir, ignore_errors=True)
        assert last_error is not None
        raise last_error

    def _launch(self) -> None:
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.base_dir),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _cleanup
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _running.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"redis-server exited with code {self.proc.returncode} during start-up:\n"
                    + _read_log(self.log_path)
                )
            if _redis_ping(self.port):
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"redis-server did not answer PING on {HOST}:{self.port} within "
            f"{START_TIMEOUT:.0f}s:\n" + _read_log(self.log_path)
        )

    def stop(self) -> None:
        """SIGTERM (then SIGKILL after a timeout) and delete the server's directory."""
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM, STOP_TIMEOUT)
            self.proc = None
        self._cleanup()

    def pause(self) -> None:
        """SIGSTOP: the server hangs (the kernel still accepts connections; nothing answers)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def crash(self) -> None:
        """SIGKILL (a paused server too): every key is gone (no persistence)."""
        assert self.proc is not None
        _terminate(self.proc, signal.SIGKILL, 0)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def start_again(self) -> None:
        """A new, empty server on the same port."""
        assert self.proc is None
        self._launch()


# --------------------------------------------------------------------------- MongoDB

MONGODB_TEST_URL_ENV = "MONGODB_TEST_URL"


def _mongo_ping(url: str, timeout_ms: int = 1000) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _drop_mongo_database(url: str, name: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


def _with_database(url: str, name: str) -> str:
    """``url`` with its path (the database name) replaced by ``name``, options kept."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def new_mongo_database_name() -> str:
    return f"dompet_test_{uuid.uuid4().hex[:16]}"


class MongoWireServer(_ManagedServer):
    """The nx-27017 MongoDB wire-protocol server (SQLite underneath), from PyPI.

    Not a replica set and not safe under concurrent transactions: the store must be opened
    with ``mongodb_allow_standalone=True`` and concurrency tests are skipped on it.
    """

    is_real = False

    def __init__(self, base_dir: Path, port: int) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "nx-27017.log"
        self.port = port
        self.proc = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    def database_url(self, name: str) -> str:
        return _with_database(self.url, name)

    def drop_database(self, name: str) -> None:
        _drop_mongo_database(self.url, name)

    @classmethod
    def start(cls, tmpdir: str | os.PathLike[str]) -> MongoWireServer:
        try:
            import nx_27017  # noqa: F401
        except ImportError as exc:  # pragma: no cover - it is a locked dev dependency
            raise ServerUnavailable("nx-27017 is not installed (uv sync --dev)") from exc
        base_dir = Path(tempfile.mkdtemp(prefix="dompet-nx27017-", dir=os.fspath(tmpdir)))
        last_error: ServerStartError | None = None
        for _ in range(_PORT_ATTEMPTS):
            server = cls(base_dir, find_free_port())
            try:
                server._launch()
            except ServerStartError as exc:
                server._kill()
                last_error = exc
                continue
            else:
                return server
        shutil.rmtree(base_dir, ignore_errors=True)
        assert last_error is not None
        raise last_error

    def _launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-c",
            "import sys; from nx_27017.nx_27017 import main; sys.exit(main())",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-file",
            str(self.base_dir / "server.log"),
            "--pid-file",
            str(self.base_dir / "nx-27017.pid"),
        ]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _cleanup
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _running.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"nx-27017 exited with code {self.proc.returncode} during start-up:\n"
                    + _read_log(self.log_path)
                )
            if _port_open(self.port) and _mongo_ping(self.url):
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"nx-27017 did not answer on {HOST}:{self.port} within {START_TIMEOUT:.0f}s:\n"
            + _read_log(self.log_path)
        )

    def stop(self) -> None:
        if self.proc is not None:
            _terminate(self.proc, signal.SIGTERM, STOP_TIMEOUT)
            self.proc = None
        self._cleanup()


class ExternalMongo:
    """A real MongoDB replica set named by ``MONGODB_TEST_URL``: one database per test."""

    is_real = True

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_env(cls) -> ExternalMongo | None:
        url = os.environ.get(MONGODB_TEST_URL_ENV, "").strip()
        return cls(url) if url else None

    def database_url(self, name: str) -> str:
        return _with_database(self.url, name)

    def drop_database(self, name: str) -> None:
        _drop_mongo_database(self.url, name)

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""
