"""The SQL implementation of the storage port (SQLite and PostgreSQL): :class:`SqlStore`.

The store is assembled here, and only here is the engine chosen (:meth:`SqlStore.open`): its
two engine seams -- connection access (``access/``) and the journal writer (``journal/``),
one module each per engine -- and, over the access, the engine-blind parts: the
repositories (``repos/``) and the history read model (``history/``). Each port method hands
its call to the part that holds it. docs/storage.md draws the layout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

from dompet.domain.history import ItemLayout
from dompet.domain.idempotency import ClaimOutcome, IdempotencyKey
from dompet.domain.invariants import LedgerSnapshot
from dompet.domain.ledger import Entry, Journal
from dompet.domain.monitoring import SettledSample, WorkerHeartbeat
from dompet.domain.operators import Operator
from dompet.domain.records import DataRecord
from dompet.domain.savings import Customer
from dompet.domain.sessions import SessionRecord, ThrottleHit, ThrottleRule
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.faults import StoreLimits
from dompet.storage.port import RenderedItems
from dompet.storage.sql.access import ConnectionAccess
from dompet.storage.sql.access.postgresql import PostgresAccess
from dompet.storage.sql.access.sqlite import SqliteAccess
from dompet.storage.sql.engine import SqlSettings, create_engines, is_sqlite
from dompet.storage.sql.history.reads import HistoryReads
from dompet.storage.sql.history.written import ItemRenderer
from dompet.storage.sql.journal import JournalWriter
from dompet.storage.sql.journal.balance_cap import refusing_over_cap
from dompet.storage.sql.journal.postgresql import PostgresJournal
from dompet.storage.sql.journal.sqlite import SqliteJournal
from dompet.storage.sql.repos.accounts import Accounts
from dompet.storage.sql.repos.customers import Customers
from dompet.storage.sql.repos.idempotency import IdempotencyKeys
from dompet.storage.sql.repos.monitoring import Monitoring
from dompet.storage.sql.repos.reconcile import Reconcile
from dompet.storage.sql.repos.records import Records
from dompet.storage.sql.repos.secrets import ServerSecrets
from dompet.storage.sql.repos.sessions import Sessions
from dompet.storage.sql.repos.throttles import Throttles
from dompet.storage.sql.repos.transfers import Transfers
from dompet.storage.sql.repos.users import Users


class SqlStore:
    """One store over SQLite or PostgreSQL. Every public method is one transaction."""

    def __init__(
        self,
        access: ConnectionAccess,
        journal: JournalWriter,
        items: ItemRenderer | None,
        *,
        batched_pages: bool,
    ) -> None:
        """``items``: wallet entries' history items are rendered as they are written, in its
        layout (``history/written.py``). ``batched_pages``: history pages (and session
        checks) wanted at the same time are read together (where a read is a round trip)."""
        self.access = access
        """The connection access (``access/``): the engine's one way in."""
        self.engine_name = access.engine_name
        self.journal = journal
        self.history = HistoryReads(access, batched=batched_pages)
        self.users = Users(access)
        self.sessions = Sessions(access, batched=batched_pages)
        self.throttles = Throttles(access)
        self.secrets = ServerSecrets(access)
        self.customers = Customers(access)
        self.accounts = Accounts(access)
        self.transfers = Transfers(access)
        self.idempotency = IdempotencyKeys(access)
        self.monitoring = Monitoring(access)
        self.reconcile = Reconcile(access, items)
        self.records = Records(access, items, journal.after_import)

    @classmethod
    async def open(
        cls,
        database_url: str,
        history_layout: ItemLayout | None = None,
        settings: SqlSettings = SqlSettings(),
        limits: StoreLimits | None = None,
    ) -> SqlStore:
        """The store of ``database_url``: its engine's two seams, chosen here. ``limits``: a
        serving process's timeouts and waiting bound (storage/faults.py)."""
        writer, reader = create_engines(database_url, settings, limits)
        items = ItemRenderer(history_layout) if history_layout is not None else None
        if is_sqlite(database_url):
            sqlite = SqliteAccess(writer, reader)
            return cls(sqlite, SqliteJournal(sqlite, items), items, batched_pages=False)
        postgres = PostgresAccess(writer, reader, settings.pg_pool_size, limits)
        journal = PostgresJournal(postgres, items, writer.dialect)
        return cls(postgres, journal, items, batched_pages=True)

    async def close(self) -> None:
        await self.history.close()
        await self.sessions.close()
        await self.access.close()

    async def ping(self) -> None:
        await self.access.ping()

    # -- wallet users (repos/users.py) -------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        await self.users.add_user(user, pin_hash)

    async def find_credentials(self, phone_number: str) -> Credentials | None:
        return await self.users.find_credentials(phone_number)

    async def get_user(self, user_id: str) -> User | None:
        return await self.users.get_user(user_id)

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        return await self.users.update_profile(user_id, changes, now)

    # -- server secrets, throttles, sessions (repos/secrets.py, throttles.py, sessions.py) --
    async def keep_secret(self, name: str, candidate: str, now: datetime) -> str:
        return await self.secrets.keep_secret(name, candidate, now)

    async def take_throttle(self, key: str, now: datetime, rule: ThrottleRule) -> ThrottleHit:
        return await self.throttles.take_throttle(key, now, rule)

    async def release_throttle(self, key: str, now: datetime) -> None:
        await self.throttles.release_throttle(key, now)

    async def clear_throttle(self, key: str) -> None:
        await self.throttles.clear_throttle(key)

    async def purge_throttles(self, before: datetime, limit: int) -> int:
        return await self.throttles.purge_throttles(before, limit)

    async def open_session(self, session: SessionRecord) -> None:
        await self.sessions.open_session(session)

    async def session_live(self, session_id: str, subject: str) -> bool:
        return await self.sessions.session_live(session_id, subject)

    async def rotate_session(
        self,
        session_id: str,
        subject: str,
        presented_jti: str,
        next_jti: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        return await self.sessions.rotate_session(
            session_id, subject, presented_jti, next_jti, expires_at, now
        )

    async def end_sessions(self, subject: str, now: datetime, session_id: str | None = None) -> int:
        return await self.sessions.end_sessions(subject, now, session_id)

    async def purge_sessions(self, before: datetime, limit: int) -> int:
        return await self.sessions.purge_sessions(before, limit)

    # -- dashboard operators (repos/users.py) ------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        await self.users.add_operator(operator)

    async def find_operator(self, username: str) -> Operator | None:
        return await self.users.find_operator(username)

    async def remove_operator(self, username: str, now: datetime) -> bool:
        return await self.users.remove_operator(username, now)

    # -- savings customers (repos/customers.py) ----------------------------------------------
    async def add_customer(self, customer: Customer) -> None:
        await self.customers.add_customer(customer)

    async def get_customer(self, no_rekening: str) -> Customer | None:
        return await self.customers.get_customer(no_rekening)

    # -- the ledger: journals (journal/), accounts (repos/accounts.py) ------------------------
    async def post_journal(
        self, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        with refusing_over_cap():
            return await self.journal.post(journal, idem)

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        with refusing_over_cap():
            return await self.journal.open_transfer(transfer, journal, idem)

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        with refusing_over_cap():
            return await self.journal.close_transfer(transfer_id, status, journal, now)

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool:
        return await self.accounts.set_account_blocked(account_id, blocked)

    async def balance(self, account_id: str) -> int | None:
        return await self.accounts.balance(account_id)

    # -- transfers, settlement's side (repos/transfers.py) -----------------------------------
    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        return await self.transfers.get_transfer(transfer_id)

    async def claim_due_transfers(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Transfer]:
        return await self.transfers.claim_due_transfers(worker_id, now, lease, limit)

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        return await self.transfers.record_settlement_failure(transfer_id, error, next_attempt_at)

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        return await self.transfers.retry_transfer_now(transfer_id, now)

    async def release_claims(self, worker_id: str) -> int:
        return await self.transfers.release_claims(worker_id)

    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        return await self.transfers.overdue_transfers(due_before, limit)

    # -- history (history/reads.py) ----------------------------------------------------------
    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        return await self.history.entries(
            account_id, limit=limit, before=before, oldest_first=oldest_first
        )

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        return await self.history.render_entries(
            account_id, user_id, layout, limit=limit, before=before
        )

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None:
        return await self.history.entry_of_journal(journal_id, account_id)

    # -- reconcile (repos/reconcile.py) ------------------------------------------------------
    async def snapshot(self) -> LedgerSnapshot:
        return await self.reconcile.snapshot()

    # -- idempotency keys (repos/idempotency.py) ---------------------------------------------
    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        return await self.idempotency.claim_idempotency(key, now, ttl, stale_after)

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        await self.idempotency.answer_idempotency(key, status, body)

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        await self.idempotency.release_idempotency(key)

    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        return await self.idempotency.purge_idempotency(before, limit)

    # -- monitoring (repos/monitoring.py) ----------------------------------------------------
    async def transfer_counts(self) -> dict[TransferStatus, int]:
        return await self.monitoring.transfer_counts()

    async def oldest_pending_created_at(self) -> datetime | None:
        return await self.monitoring.oldest_pending_created_at()

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        return await self.monitoring.settled_since(since, limit)

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        return await self.monitoring.troubled_transfers(limit)

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        await self.monitoring.record_heartbeat(heartbeat)

    async def heartbeats(self) -> list[WorkerHeartbeat]:
        return await self.monitoring.heartbeats()

    # -- whole-database export and import (repos/records.py) ---------------------------------
    async def is_empty(self) -> bool:
        return await self.records.is_empty()

    def export_records(self) -> AsyncIterator[DataRecord]:
        return self.records.export_records()

    async def import_records(self, records: Sequence[DataRecord]) -> None:
        await self.records.import_records(records)
