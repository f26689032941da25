"""MongoDB-only behaviour: versioned migrations, validators, unique indexes, the replica-set check.

Runs on the nx-27017 wire-protocol server (started by the tests), or on the real replica set
named by MONGODB_TEST_URL. nx-27017 neither stores nor enforces $jsonSchema validators, so the
validator test runs only on a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, WriteError
from typer.testing import CliRunner

from dompet.cli import app
from dompet.domain.money import BALANCE_CAP
from dompet.storage import engine_of, migrate, open_store
from dompet.storage.mongo.client import MongoNotReplicaSet, stamp, unstamp
from dompet.storage.mongo.migrations import MIGRATIONS, MIGRATIONS_COLLECTION, upgrade_db
from tests.support.fixtures import MongoServer

Doc = dict[str, object]


@pytest.fixture
async def mongo_db(mongo_url: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url)
    try:
        yield client.get_default_database()
    finally:
        await client.close()


def test_engine_of_mongodb_schemes() -> None:
    assert engine_of("mongodb://127.0.0.1:27017/dompet?replicaSet=rs0") == "mongodb"
    assert engine_of("mongodb+srv://user:pw@cluster0.example.net/dompet") == "mongodb"


def test_timestamps_are_exact_microseconds() -> None:
    moment = datetime(2021, 4, 1, 15, 21, 21, 123456, tzinfo=UTC)
    assert stamp(moment) == 1617290481123456
    assert unstamp(stamp(moment)) == moment
    assert unstamp(stamp(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))) == datetime(
        1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        stamp(datetime(2021, 4, 1))


async def test_migrations_are_versioned_and_idempotent(
    mongo_url: str, mongo_db: AsyncDatabase[Doc]
) -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert await migrate(mongo_url, mongodb_allow_standalone=True) == versions
    assert await migrate(mongo_url, mongodb_allow_standalone=True) == []
    recorded = [d["_id"] async for d in mongo_db[MIGRATIONS_COLLECTION].find().sort("_id", 1)]
    assert recorded == versions
    names = set(await mongo_db.list_collection_names())
    assert {"users", "accounts", "journals", "postings", "transfers", "customers"} <= names
    assert {"idempotency_keys", "throttles", "sessions", "server_secrets"} <= names
    assert not {"login_throttle", "used_refresh_tokens"} & names  # replaced in 0006
    assert "worker_heartbeats" in names
    # A step whose record is lost is simply run again, without harm (create-or-update).
    await mongo_db[MIGRATIONS_COLLECTION].delete_one({"_id": versions[-1]})
    assert await migrate(mongo_url, mongodb_allow_standalone=True) == [versions[-1]]
    system = [d["_id"] async for d in mongo_db.accounts.find({"kind": "system"})]
    assert len(system) == len(set(system)) == 4


async def test_unique_indexes(mongo_url: str, mongo_db: AsyncDatabase[Doc]) -> None:
    await migrate(mongo_url, mongodb_allow_standalone=True)
    expected: dict[str, list[tuple[str, ...]]] = {
        "users": [("phone_number",)],
        "customers": [("nik",), ("no_hp",), ("no_rekening",)],
        "idempotency_keys": [("scope", "key")],
    }
    for collection, keys in expected.items():
        info = await mongo_db[collection].index_information()
        unique = {tuple(f for f, _ in i["key"]) for i in info.values() if i.get("unique")}
        assert set(keys) <= unique, (collection, info)
    row: Doc = {
        "nama": "Siti",
        "nik": "3171234567890001",
        "no_hp": "081234567890",
        "no_rekening": "1234567890",
        "created_at": stamp(datetime.now(UTC)),
    }
    await mongo_db.customers.insert_one({"_id": "c1", **row})
    for field, value in (("nik", "3171234567890002"), ("no_hp", "081234567891")):
        other = {**row, "_id": f"c-{field}", field: value}  # only the *other* uniques clash
        with pytest.raises(DuplicateKeyError):
            await mongo_db.customers.insert_one(other)
    moment = stamp(datetime.now(UTC))
    key: Doc = {
        "scope": "u1",
        "key": "k1",
        "fingerprint": "f",
        "journal_id": None,
        "response_status": None,
        "response_body": None,
        "created_at": moment,
        "expires_at": moment,
    }  # a valid document (validators apply on a real server): only the unique index refuses
    await mongo_db.idempotency_keys.insert_one(dict(key))
    with pytest.raises(DuplicateKeyError):
        await mongo_db.idempotency_keys.insert_one(dict(key))


class _SchemaCommands(monitoring.CommandListener):
    """Records the validator sent with every create / collMod command."""

    def __init__(self) -> None:
        self.validators: dict[str, Doc] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("create", "collMod") and "validator" in event.command:
            self.validators[event.command[event.command_name]] = event.command["validator"]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_migrations_send_a_strict_validator_for_every_collection(mongo_url: str) -> None:
    """Through the real driver: each collection is created with a strict $jsonSchema."""
    listener = _SchemaCommands()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, event_listeners=[listener])
    try:
        await upgrade_db(client.get_default_database())
    finally:
        await client.close()
    assert set(listener.validators) >= {
        "users",
        "accounts",
        "journals",
        "postings",
        "transfers",
        "customers",
        "idempotency_keys",
        "throttles",
        "sessions",
        "server_secrets",
        "worker_heartbeats",
    }
    accounts = listener.validators["accounts"]["$jsonSchema"]
    assert isinstance(accounts, dict)
    assert accounts["properties"]["balance"]["minimum"] == 0  # never below zero, server-side
    assert accounts["properties"]["balance"]["maximum"] == BALANCE_CAP  # nor above the cap
    assert "balance" in accounts["required"]


async def test_validators_reject_bad_documents(
    mongo_server: MongoServer, mongo_url: str, mongo_db: AsyncDatabase[Doc]
) -> None:
    if not mongo_server.is_real:
        pytest.skip(
            "SKIPPED: nx-27017 neither stores nor enforces $jsonSchema validators; "
            "set MONGODB_TEST_URL to a real replica set to run this"
        )
    await migrate(mongo_url)
    with pytest.raises(WriteError) as raised:
        await mongo_db.accounts.insert_one(
            {"_id": "wallet:x", "kind": "wallet", "balance": -1, "seq": 0, "blocked": False}
        )
    assert raised.value.code == 121  # DocumentValidationFailure
    with pytest.raises(WriteError):
        await mongo_db.users.insert_one({"_id": "u1", "phone_number": 81234567890})


async def test_standalone_server_is_refused_unless_allowed(
    mongo_server: MongoServer, mongo_url: str
) -> None:
    if mongo_server.is_real:  # a replica set: accepted without the test-only switch
        store = await open_store(mongo_url)
        await store.close()
        return
    with pytest.raises(MongoNotReplicaSet, match=r"not a replica set.*--replSet rs0"):
        await open_store(mongo_url)
    with pytest.raises(MongoNotReplicaSet, match="MONGODB_ALLOW_STANDALONE"):
        await migrate(mongo_url)
    store = await open_store(mongo_url, mongodb_allow_standalone=True)
    await store.ping()
    await store.close()


def test_migrate_command_explains_the_refusal(
    mongo_server: MongoServer, mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mongo_server.is_real:
        pytest.skip("SKIPPED: the server named by MONGODB_TEST_URL is a replica set")
    monkeypatch.setenv("DATABASE_URL", mongo_url)
    monkeypatch.delenv("MONGODB_ALLOW_STANDALONE", raising=False)
    refused = CliRunner().invoke(app, ["migrate"])
    assert refused.exit_code == 2
    assert "not a replica set" in " ".join(refused.output.split())
    monkeypatch.setenv("MONGODB_ALLOW_STANDALONE", "1")
    accepted = CliRunner().invoke(app, ["migrate"])
    assert accepted.exit_code == 0, accepted.output
    assert "0001" in accepted.output
