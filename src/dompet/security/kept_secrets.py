"""The server's secrets: configured, or generated once and kept, the same in every process.

JWT_SECRET and DASHBOARD_SESSION_SECRET win when set (production refuses to start without
JWT_SECRET: config.py). Otherwise strong random ones are generated on the first start and
kept, so tokens and dashboard sessions survive restarts and every process of the server
(``dompet serve --workers N``, ``dompet worker``) signs and checks with the same keys:

* **SQLite** (a database file): in ``<database>.secrets.json`` beside it, mode 0600. The file
  is written whole under a temporary name and then hard-linked into place, which fails if the
  name exists: of processes starting at once, one link wins and all read the winner's file.
  A file readable by anyone else is refused (chmod 600 it).
* **PostgreSQL, MongoDB** (and SQLite in memory): in the database (``server_secrets``), one
  row per name written at most once (``store.keep_secret``): every machine pointing at the
  database shares them, with no shared file system. Whoever can read that table can mint
  tokens, but that is development only: production must configure its secrets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from dompet.config import Settings
from dompet.storage import engine_of
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)

JWT = "jwt_secret"
DASHBOARD = "dashboard_session_secret"
NAMES = (JWT, DASHBOARD)
SUFFIX = ".secrets.json"
MIN_KEPT_LENGTH = 32


class SecretsFileError(RuntimeError):
    """The kept secrets file is unsafe or unreadable: the server refuses to start."""


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    jwt: str
    dashboard_session: str | None
    """DASHBOARD_SESSION_SECRET or the generated one; None: derive it from the JWT secret."""
    kept_at: str | None = None
    """Where generated secrets are kept (a file path, or ``the database``); None: configured."""


def secrets_file(database_url: str) -> Path | None:
    """Where an SQLite database file keeps its generated secrets; None for other databases
    (and for SQLite in memory or through a ``file:`` URI: the database keeps them)."""
    if engine_of(database_url) != "sqlite":
        return None
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(path.name + SUFFIX)


async def server_secrets(settings: Settings, store: LedgerStore) -> ServerSecrets:
    jwt = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    dashboard = (
        settings.dashboard_session_secret.get_secret_value()
        if settings.dashboard_session_secret
        else None
    )
    if jwt is not None:  # configured (a dashboard key, if not set, is derived from it)
        return ServerSecrets(jwt, dashboard)
    path = secrets_file(settings.database_url)
    if path is not None:
        kept = keep_in_file(path)
        where = str(path)
    else:
        now = datetime.now(UTC)
        kept = {name: await store.keep_secret(name, _generate(), now) for name in NAMES}
        where = "the database (server_secrets)"
    log.info("JWT_SECRET is not set: using the generated secrets kept in %s", where)
    return ServerSecrets(kept[JWT], dashboard or kept[DASHBOARD], where)


def keep_in_file(path: Path) -> dict[str, str]:
    """The secrets kept in ``path``, written first (race-free) if the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                json.dump({name: _generate() for name in NAMES}, out)
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use its
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        _sync_directory(path.parent)
    return _read(path)


def _read(path: Path) -> dict[str, str]:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretsFileError(f"cannot open the secrets file {path}: {exc}") from exc
    with os.fdopen(descriptor) as source:
        mode = os.fstat(source.fileno()).st_mode
        if not stat.S_ISREG(mode) or mode & 0o077:
            raise SecretsFileError(
                f"the secrets file {path} may be read by others (mode {stat.filemode(mode)}): "
                f"chmod 600 it, or remove it to have new secrets generated"
            )
        try:
            kept = json.load(source)
        except ValueError as exc:
            raise SecretsFileError(f"the secrets file {path} is not valid JSON") from exc
    if not isinstance(kept, dict) or not all(
        isinstance(kept.get(name), str) and len(kept[name]) >= MIN_KEPT_LENGTH for name in NAMES
    ):
        raise SecretsFileError(
            f"the secrets file {path} lacks {', '.join(NAMES)} (32+ characters each); "
            "remove it to have new secrets generated"
        )
    return {name: str(kept[name]) for name in NAMES}


def _generate() -> str:
    return secrets.token_urlsafe(48)  # 384 random bits, 64 characters


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # best effort: the file itself was fsynced
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
