"""Connecting to MongoDB: the client, the database, and the replica-set check at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "dompet"

Document = dict[str, Any]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> int:
    """A timestamp as stored: whole microseconds since the Unix epoch, UTC (an int64).

    Integers are exact (a BSON date keeps milliseconds only, so a value read back would
    differ from the one written), and they compare, sort and ``$set`` identically on every
    server (nx-27017's ``$set`` turns BSON dates into strings).
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return (moment - _EPOCH) // timedelta(microseconds=1)


@overload
def unstamp(value: int) -> datetime: ...
@overload
def unstamp(value: None) -> None: ...
def unstamp(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=int(value))


class MongoNotReplicaSet(RuntimeError):
    """The server cannot run multi-document transactions (a standalone mongod)."""


@dataclass(slots=True)
class MongoConnection:
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    standalone: bool
    """True when the server is not a replica set (only with allow_standalone)."""

    async def close(self) -> None:
        await self.client.close()


def _refusal(address: str) -> str:
    return (
        f"MongoDB at {address} is not a replica set (its 'hello' reply has no setName). "
        "Dompet applies every journal in a multi-document transaction, and MongoDB only runs "
        "transactions on a replica set or a sharded cluster. Start mongod with --replSet rs0 "
        "and run rs.initiate() once (a single-node replica set is fine; see docs/mongodb.md "
        "and docker-compose.yml). MONGODB_ALLOW_STANDALONE=1 skips this check: for the "
        "nx-27017 test server only, never for real money."
    )


async def connect(database_url: str, *, allow_standalone: bool = False) -> MongoConnection:
    """Open a client for ``database_url`` and check that the server can run transactions.

    Raises :class:`MongoNotReplicaSet` (the client closed) when the server is standalone and
    ``allow_standalone`` is False.
    """
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        database_url, tz_aware=True, tzinfo=UTC, appname="dompet"
    )
    try:
        hello: Document = await client.admin.command("hello")
        replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
        if not replicated and not allow_standalone:
            servers = client.topology_description.server_descriptions()
            raise MongoNotReplicaSet(_refusal(", ".join(f"{h}:{p}" for h, p in servers)))
        if not replicated:
            log.warning(
                "MongoDB is not a replica set: MONGODB_ALLOW_STANDALONE=1 is set, so Dompet "
                "serialises its store operations per event loop (test servers only)"
            )
        db = client.get_default_database(default=DEFAULT_DATABASE)
    except BaseException:
        await client.close()
        raise
    return MongoConnection(client=client, db=db, standalone=not replicated)
