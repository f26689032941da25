"""Storage: the port and its engines. The engine is chosen from DATABASE_URL here, only here."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from dompet.domain.history import ItemLayout
from dompet.storage.port import LedgerStore

if TYPE_CHECKING:
    from dompet.storage.faults import StoreLimits
    from dompet.storage.sql.engine import SqlSettings


def engine_of(database_url: str) -> str:
    """'sqlite', 'postgresql' or 'mongodb', from the URL's scheme."""
    scheme = database_url.split(":", 1)[0].lower()
    if scheme in ("mongodb", "mongodb+srv"):
        return "mongodb"
    scheme = scheme.split("+", 1)[0]
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"unsupported DATABASE_URL scheme: {scheme!r}")


async def open_store(
    database_url: str,
    *,
    history_layout: ItemLayout | None = None,
    mongodb_allow_standalone: bool = False,
    sql_settings: SqlSettings | None = None,
    limits: StoreLimits | None = None,
) -> LedgerStore:
    """Connect to the database named by ``database_url``; the caller closes the store.

    ``history_layout``: the SQL stores render each new wallet entry's history item in it as
    they write the entry (``sql/history/written.py``); pages in that layout then read it back.
    ``mongodb_allow_standalone`` lets MongoDB run on a server that is not a replica set
    (the nx-27017 test server); without it such a server is refused at start-up.
    ``sql_settings``: the SQL engines' settings (``config.Settings``; defaults if None).
    ``limits``: the timeouts and waiting bound of a serving process (storage/faults.py);
    None leaves the drivers' own (migrations, tools).
    """
    engine = engine_of(database_url)
    if engine == "mongodb":
        from dompet.storage.mongo.store import MongoStore

        if limits is not None:
            database_url = mongodb_with_timeouts(database_url, limits.connect_timeout)
        return await MongoStore.open(database_url, allow_standalone=mongodb_allow_standalone)
    from dompet.storage.sql.engine import SqlSettings
    from dompet.storage.sql.store import SqlStore

    return await SqlStore.open(database_url, history_layout, sql_settings or SqlSettings(), limits)


def mongodb_with_timeouts(database_url: str, seconds: float) -> str:
    """``database_url`` with PyMongo's server-selection and connect timeouts set to ``seconds``
    (its defaults: 30 s and 20 s), unless the URL sets them itself: an unreachable server is
    then a 503 within the limit, as on PostgreSQL."""
    parts = urllib.parse.urlsplit(database_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    given = {name.lower() for name, _ in query}
    milliseconds = str(max(1, round(seconds * 1000)))
    for name in ("serverSelectionTimeoutMS", "connectTimeoutMS"):
        if name.lower() not in given:
            query.append((name, milliseconds))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def migrate(database_url: str, *, mongodb_allow_standalone: bool = False) -> list[str]:
    """Bring the schema up to date; return the versions applied."""
    if engine_of(database_url) == "mongodb":
        from dompet.storage.mongo.migrations import upgrade as mongo_upgrade

        return await mongo_upgrade(database_url, allow_standalone=mongodb_allow_standalone)
    from dompet.storage.sql.migrate import upgrade as sql_upgrade

    return await sql_upgrade(database_url)
