"""Storage: the port and its engines. The engine is chosen from DATABASE_URL here, only here."""

from __future__ import annotations

from dompet.storage.port import LedgerStore


def engine_of(database_url: str) -> str:
    """'sqlite', 'postgresql' or 'mongodb', from the URL's scheme."""
    scheme = database_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme in ("mongodb", "mongodb+srv"):
        return "mongodb"
    raise ValueError(f"unsupported DATABASE_URL scheme: {scheme!r}")


async def open_store(database_url: str) -> LedgerStore:
    """Connect to the database named by ``database_url``; the caller closes the store."""
    engine = engine_of(database_url)
    if engine == "mongodb":
        raise ValueError("the MongoDB engine is not part of this build yet")
    from dompet.storage.sql.store import SqlStore

    return await SqlStore.open(database_url)


async def migrate(database_url: str) -> list[str]:
    """Bring the schema up to date; return the versions applied."""
    if engine_of(database_url) == "mongodb":
        raise ValueError("the MongoDB engine is not part of this build yet")
    from dompet.storage.sql.migrate import upgrade as sql_upgrade

    return await sql_upgrade(database_url)
