"""Versioned MongoDB migrations: collections, $jsonSchema validators, indexes.

Each step has a version ("0001", ...) and is recorded in the ``schema_migrations`` collection
once applied. Steps are idempotent (create-or-update), so a step interrupted half-way, or run
by two migrators at once, is simply run again. Never edit an applied step: append a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from dompet.domain.ledger import SystemAccount
from dompet.domain.money import BALANCE_CAP
from dompet.storage.mongo.client import Document, connect, stamp

MIGRATIONS_COLLECTION = "schema_migrations"

# -- $jsonSchema building blocks ----------------------------------------------------------------
STRING: Document = {"bsonType": "string"}
INTEGER: Document = {"bsonType": ["int", "long"]}
DATE: Document = {"bsonType": "long", "description": "microseconds since the Unix epoch, UTC"}
BOOL: Document = {"bsonType": "bool"}


def _nullable(schema: Document) -> Document:
    kinds = schema["bsonType"]
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return {**schema, "bsonType": [*kinds, "null"]}


def _string(max_length: int) -> Document:
    return {"bsonType": "string", "maxLength": max_length}


def _schema(properties: Document, required: list[str] | None = None) -> Document:
    return {
        "$jsonSchema": {
            "bsonType": "object",
            "required": required if required is not None else list(properties),
            "properties": properties,
        }
    }


async def _ensure_collection(
    db: AsyncDatabase[Document],
    name: str,
    validator: Document,
    indexes: list[IndexModel] | None = None,
) -> None:
    """Create the collection with its validator (or update the validator), then its indexes."""
    try:
        await db.create_collection(
            name, validator=validator, validationLevel="strict", validationAction="error"
        )
    except CollectionInvalid:  # it exists: bring its validator up to date
        await db.command(
            "collMod", name, validator=validator, validationLevel="strict", validationAction="error"
        )
    if indexes:
        await db[name].create_indexes(indexes)


def _accounts_schema(cap: int | None = None) -> Document:
    # A second line of defence behind the guarded update: never below zero (and, from 0006,
    # never above the cap; system accounts keep no balance here, so it applies to all).
    balance: Document = {**INTEGER, "minimum": 0}
    if cap is not None:
        balance["maximum"] = cap
    return _schema(
        {
            "_id": _string(64),
            "kind": {"enum": ["wallet", "savings", "system"]},
            "balance": balance,
            "seq": INTEGER,
            "blocked": BOOL,
            "created_at": DATE,
        }
    )


# -- the steps ---------------------------------------------------------------------------------
async def _0001_ledger(db: AsyncDatabase[Document]) -> None:
    await _ensure_collection(
        db,
        "users",
        _schema(
            {
                "_id": _string(36),
                "first_name": _string(100),
                "last_name": _string(100),
                "phone_number": _string(20),
                "address": _string(500),
                "pin_hash": _string(255),
                "created_at": DATE,
                "updated_at": DATE,
            }
        ),
        [IndexModel([("phone_number", ASCENDING)], unique=True, name="uq_users_phone_number")],
    )
    await _ensure_collection(db, "accounts", _accounts_schema())
    await _ensure_collection(
        db,
        "journals",
        _schema(
            {
                "_id": _string(36),
                "kind": STRING,
                "reference": _string(36),
                "remarks": _string(500),
                "created_at": DATE,
            }
        ),
        [IndexModel([("reference", ASCENDING)], name="ix_journals_reference")],
    )
    await _ensure_collection(
        db,
        "postings",
        _schema(
            {
                "_id": STRING,
                "journal_id": _string(36),
                "account_id": _string(64),
                "seq": _nullable(INTEGER),
                "n": _nullable(INTEGER),
                "amount": INTEGER,
                "balance_before": _nullable(INTEGER),
                "balance_after": _nullable(INTEGER),
                "kind": STRING,
                "reference": _string(36),
                "remarks": _string(500),
                "created_at": DATE,
            }
        ),
        [
            IndexModel([("account_id", ASCENDING), ("seq", ASCENDING)], name="ix_postings_seq"),
            IndexModel([("journal_id", ASCENDING)], name="ix_postings_journal_id"),
        ],
    )
    await _ensure_collection(
        db,
        "transfers",
        _schema(
            {
                "_id": _string(36),
                "sender_id": _string(36),
                "target_id": _string(36),
                "amount": {**INTEGER, "minimum": 1},
                "remarks": _string(500),
                "status": {"enum": ["PENDING", "SUCCESS", "FAILED"]},
                "created_at": DATE,
                "settled_at": _nullable(DATE),
                "attempts": INTEGER,
                "last_error": STRING,
                "next_attempt_at": DATE,
                "claimed_by": _nullable(STRING),
                "claimed_until": _nullable(DATE),
            }
        ),
        [
            IndexModel(
                [("status", ASCENDING), ("next_attempt_at", ASCENDING)],
                name="ix_transfers_status_next_attempt_at",
            ),
            IndexModel([("settled_at", DESCENDING)], name="ix_transfers_settled_at"),
            IndexModel([("claimed_by", ASCENDING)], name="ix_transfers_claimed_by"),
        ],
    )
    await _ensure_collection(
        db,
        "login_throttle",
        _schema(
            {"_id": _string(20), "failures": INTEGER, "locked_until": _nullable(DATE)},
            required=["_id", "failures"],
        ),
    )
    await _ensure_collection(
        db,
        "used_refresh_tokens",
        _schema({"_id": _string(36), "user_id": _string(36), "expires_at": DATE}),
        [IndexModel([("expires_at", ASCENDING)], name="ix_refresh_expires_at")],
    )
    await _ensure_collection(
        db,
        "idempotency_keys",
        _schema(
            {
                "scope": _string(64),
                "key": _string(255),
                "fingerprint": _string(64),
                "journal_id": _nullable(_string(36)),
                "response_status": _nullable(INTEGER),
                "response_body": _nullable({"bsonType": "binData"}),
                "created_at": DATE,
                "expires_at": DATE,
            }
        ),
        [
            IndexModel(
                [("scope", ASCENDING), ("key", ASCENDING)],
                unique=True,
                name="uq_idempotency_scope_key",
            )
        ],
    )
    await _ensure_collection(
        db,
        "customers",
        _schema(
            {
                "_id": _string(36),
                "nama": _string(100),
                "nik": _string(16),
                "no_hp": _string(20),
                "no_rekening": _string(10),
                "created_at": DATE,
            }
        ),
        [
            IndexModel([("nik", ASCENDING)], unique=True, name="uq_customers_nik"),
            IndexModel([("no_hp", ASCENDING)], unique=True, name="uq_customers_no_hp"),
            IndexModel([("no_rekening", ASCENDING)], unique=True, name="uq_customers_no_rekening"),
        ],
    )
    now = datetime.now(UTC)
    for account in SystemAccount:
        await db.accounts.update_one(
            {"_id": account.value},
            {
                "$setOnInsert": {
                    "kind": "system",
                    "balance": 0,
                    "seq": 0,
                    "blocked": False,
                    "created_at": stamp(now),
                }
            },
            upsert=True,
        )


async def _0002_worker_heartbeats(db: AsyncDatabase[Document]) -> None:
    await _ensure_collection(
        db,
        "worker_heartbeats",
        _schema(
            {
                "_id": _string(200),
                "kind": _string(32),
                "started_at": DATE,
                "last_seen_at": DATE,
                "settled": INTEGER,
                "failed": INTEGER,
                "info": {"bsonType": "object"},
            }
        ),
        [IndexModel([("last_seen_at", DESCENDING)], name="ix_heartbeats_last_seen_at")],
    )


async def _0003_sequence_floor(db: AsyncDatabase[Document]) -> None:
    """ledger_meta: the floor above which new entry sequences start (raised by imports)."""
    await _ensure_collection(db, "ledger_meta", _schema({"_id": STRING, "floor": INTEGER}))
    await db.ledger_meta.update_one(
        {"_id": "sequences"}, {"$setOnInsert": {"floor": 0}}, upsert=True
    )


async def _0004_operators(db: AsyncDatabase[Document]) -> None:
    """Dashboard operators: the username is the _id (unique), an Argon2id hash."""
    await _ensure_collection(
        db,
        "operators",
        _schema({"_id": _string(64), "password_hash": STRING, "created_at": DATE}),
    )


async def _0005_idempotency_expires_at(db: AsyncDatabase[Document]) -> None:
    """The purge of expired idempotency keys finds its batch by expires_at."""
    await db.idempotency_keys.create_indexes(
        [IndexModel([("expires_at", ASCENDING)], name="ix_idempotency_expires_at")]
    )


async def _0006_safe_by_default(db: AsyncDatabase[Document]) -> None:
    """Issue 19 (SQL 0007): kept server secrets, throttles, sessions; a cap on balances.

    ``throttles`` and ``sessions`` replace ``login_throttle`` and ``used_refresh_tokens``
    (dropped: a lock in force at the upgrade is lifted, and a refresh token issued before it
    names no session, so it is refused: log in again).
    """
    await _ensure_collection(
        db, "server_secrets", _schema({"_id": _string(64), "value": STRING, "created_at": DATE})
    )
    await _ensure_collection(
        db,
        "throttles",
        _schema({"_id": _string(128), "hits": INTEGER, "until": DATE}),
        [IndexModel([("until", ASCENDING)], name="ix_throttles_until")],
    )
    await _ensure_collection(
        db,
        "sessions",
        _schema(
            {
                "_id": _string(36),
                "subject": _string(100),
                "refresh_jti": _nullable(_string(36)),
                "created_at": DATE,
                "expires_at": DATE,
                "ended_at": _nullable(DATE),
            }
        ),
        [
            IndexModel([("subject", ASCENDING)], name="ix_sessions_subject"),
            IndexModel([("expires_at", ASCENDING)], name="ix_sessions_expires_at"),
        ],
    )
    for old in ("login_throttle", "used_refresh_tokens"):
        await db.drop_collection(old)
    await _ensure_collection(db, "accounts", _accounts_schema(BALANCE_CAP))


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    apply: Callable[[AsyncDatabase[Document]], Awaitable[None]]


MIGRATIONS: list[Migration] = [
    Migration("0001", "ledger collections, validators and unique indexes", _0001_ledger),
    Migration("0002", "worker heartbeats", _0002_worker_heartbeats),
    Migration("0003", "entry-sequence floor for imports", _0003_sequence_floor),
    Migration("0004", "dashboard operators", _0004_operators),
    Migration("0005", "idempotency keys by expiry (purge)", _0005_idempotency_expires_at),
    Migration("0006", "secrets, throttles, sessions, balance cap", _0006_safe_by_default),
]


async def applied_versions(db: AsyncDatabase[Document]) -> list[str]:
    return sorted([doc["_id"] async for doc in db[MIGRATIONS_COLLECTION].find({}, {"_id": 1})])


async def upgrade_db(db: AsyncDatabase[Document]) -> list[str]:
    """Apply every step not yet recorded, oldest first; return the versions applied."""
    done = set(await applied_versions(db))
    applied: list[str] = []
    for step in MIGRATIONS:
        if step.version in done:
            continue
        await step.apply(db)
        record: dict[str, Any] = {"name": step.name, "applied_at": datetime.now(UTC)}
        await db[MIGRATIONS_COLLECTION].update_one(
            {"_id": step.version}, {"$setOnInsert": record}, upsert=True
        )
        applied.append(step.version)
    return applied


async def upgrade(database_url: str, *, allow_standalone: bool = False) -> list[str]:
    """Connect (checking for a replica set), apply pending steps, disconnect."""
    connection = await connect(database_url, allow_standalone=allow_standalone)
    try:
        return await upgrade_db(connection.db)
    finally:
        await connection.close()
