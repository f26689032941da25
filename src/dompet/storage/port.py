"""The storage port: everything the services need from a database, engine-neutral.

A store may render history pages itself (``render_entries``) in an ``ItemLayout`` the API
gives it (``domain/history.py``; the keys are the API's, ``api/presenters.py``).

Every method is one atomic step in the store. Money-moving methods apply a whole journal in one
transaction, with the overdraft guard and the balance change as one statement (or one document
update inside a transaction), never a read-modify-write in Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

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


class RenderedItems(NamedTuple):
    """A history page rendered by the store."""

    body: bytes
    """The JSON array of the items, newest first."""
    size: int
    """How many items."""
    last_sequence: int | None
    """The sequence of the last (oldest) item: the next page's cursor."""


class LedgerStore(Protocol):
    """The one port every engine (SQLite, PostgreSQL, MongoDB) implements."""

    engine_name: str

    async def ping(self) -> None:
        """Raise if the database does not answer."""

    async def close(self) -> None: ...

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        """Create the user and their wallet account. Raises PhoneTaken."""

    async def find_credentials(self, phone_number: str) -> Credentials | None: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None: ...

    # -- server secrets, attempt throttles and sessions (issue 19) --------------------------
    async def keep_secret(self, name: str, candidate: str, now: datetime) -> str:
        """The secret kept under ``name``; ``candidate`` is kept (and returned) if none was.

        Atomic: of processes racing to keep one, every one gets the value kept first.
        """

    async def take_throttle(self, key: str, now: datetime, rule: ThrottleRule) -> ThrottleHit:
        """Count one attempt under ``key`` and decide it, in one atomic step: granted while
        the window's count (refused attempts included) is within ``rule.limit``. A window
        whose ``until`` has passed starts over (see domain/sessions.py ThrottleRule)."""

    async def release_throttle(self, key: str, now: datetime) -> None:
        """Take back one attempt of the current window (it succeeded; never below 0)."""

    async def clear_throttle(self, key: str) -> None:
        """Forget the key's attempts (a successful login ends a lock's count)."""

    async def purge_throttles(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` throttles whose window ended before ``before``; how many."""

    async def open_session(self, session: SessionRecord) -> None: ...

    async def session_live(self, session_id: str, subject: str) -> bool:
        """Whether the session exists, belongs to ``subject`` and was not ended. Asked on every
        authenticated request: one primary-key read, and it sees every process's writes."""

    async def rotate_session(
        self,
        session_id: str,
        subject: str,
        presented_jti: str,
        next_jti: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        """Refresh: if ``presented_jti`` is the live session's current refresh token, make
        ``next_jti`` the current one (and ``expires_at`` the session's) and return True.
        Otherwise return False; a live session is then ended (the token was used before:
        reuse detection), atomically with the check."""

    async def end_sessions(self, subject: str, now: datetime, session_id: str | None = None) -> int:
        """End the subject's live sessions (only ``session_id`` when given); how many."""

    async def purge_sessions(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` sessions whose tokens all expired before ``before``. A
        missing session is an ended one, so purging never lets a token back in."""

    # -- savings customers -------------------------------------------------------------------
    async def add_customer(self, customer: Customer) -> None:
        """Create the customer and their savings account.

        Raises NikTaken, NoHpTaken, or AccountNumberTaken (the caller draws another number).
        """

    async def get_customer(self, no_rekening: str) -> Customer | None: ...

    # -- the ledger --------------------------------------------------------------------------
    async def post_journal(
        self, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        """Apply the journal atomically; return the customer entries it wrote.

        Raises InsufficientFunds if a customer posting would go below zero, AccountNotFound if
        a customer account does not exist, AccountBlocked for a blocked account. With ``idem``,
        the key is marked answered by this journal in the same transaction.
        """

    async def open_transfer(
        self, transfer: Transfer, journal: Journal, idem: IdempotencyKey | None = None
    ) -> list[Entry]:
        """Record a PENDING transfer and its debit journal in one transaction."""

    async def close_transfer(
        self, transfer_id: str, status: TransferStatus, journal: Journal, now: datetime
    ) -> bool:
        """Apply the settlement (or refund) journal and flip PENDING -> status, atomically.

        Returns False, changing nothing, when the transfer is no longer PENDING.
        """

    async def get_transfer(self, transfer_id: str) -> Transfer | None: ...

    async def claim_due_transfers(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Transfer]:
        """Lease up to ``limit`` due PENDING transfers to one worker; never one to two workers."""

    async def record_settlement_failure(
        self, transfer_id: str, error: str, next_attempt_at: datetime
    ) -> Transfer | None:
        """Count a failed attempt, keep the error, release the lease until next_attempt_at."""

    async def retry_transfer_now(self, transfer_id: str, now: datetime) -> bool:
        """Make a PENDING transfer due at once (operator retry). False if not PENDING."""

    async def set_account_blocked(self, account_id: str, blocked: bool) -> bool: ...

    async def balance(self, account_id: str) -> int | None:
        """A customer account's balance, None if it does not exist."""

    async def entries(
        self,
        account_id: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        oldest_first: bool = False,
    ) -> list[Entry]:
        """The account's entries, newest first (or oldest first), keyset-paged by sequence."""

    async def render_entries(
        self,
        account_id: str,
        user_id: str,
        layout: ItemLayout,
        *,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        """``entries(account_id, limit=limit, before=before)`` as the JSON array ``layout``
        describes, built by the database in one statement; ``user_id`` is the USER_ID value.

        None when this store does not render (then the caller presents ``entries``), or when
        an entry of the page is dated outside ``DISPLAY_RANGE``.
        """

    async def entry_of_journal(self, journal_id: str, account_id: str) -> Entry | None: ...

    async def snapshot(self) -> LedgerSnapshot:
        """Everything the invariant check needs, read consistently."""

    # -- idempotency keys --------------------------------------------------------------------
    async def claim_idempotency(
        self, key: IdempotencyKey, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> ClaimOutcome:
        """Claim a key, or say how its first use was answered.

        Raises IdempotencyConflict if the key was used with another request, or is still in
        flight (claimed less than ``stale_after`` ago and not yet answered).
        """

    async def answer_idempotency(self, key: IdempotencyKey, status: int, body: bytes) -> None:
        """Record the response of a request that moved no money (a rejection)."""

    async def release_idempotency(self, key: IdempotencyKey) -> None:
        """Forget an unanswered claim (the request failed unexpectedly)."""

    # -- monitoring (dashboard, metrics) ---------------------------------------------------
    async def transfer_counts(self) -> dict[TransferStatus, int]:
        """How many transfers are in each status (every status present, 0 if none)."""

    async def oldest_pending_created_at(self) -> datetime | None: ...

    async def settled_since(self, since: datetime, limit: int = 10000) -> list[SettledSample]:
        """Transfers that became SUCCESS or FAILED at or after ``since``, newest first."""

    async def troubled_transfers(self, limit: int = 50) -> list[Transfer]:
        """PENDING transfers with at least one failed attempt, and FAILED ones; newest first."""

    async def record_heartbeat(self, heartbeat: WorkerHeartbeat) -> None:
        """Upsert a worker's heartbeat (by worker_id)."""

    async def heartbeats(self) -> list[WorkerHeartbeat]: ...

    async def release_claims(self, worker_id: str) -> int:
        """Give back every PENDING transfer this worker holds (graceful shutdown)."""

    # -- whole-database export and import (example data, dump/load) ------------------------
    async def is_empty(self) -> bool:
        """True when the database holds no user, customer, journal or transfer (a fresh,
        migrated database; its system accounts do not count)."""

    def export_records(self) -> AsyncIterator[DataRecord]:
        """Yield every record of the database, read consistently, in RECORD_KINDS order:
        every customer account (AccountRecord, ordered by id; system accounts come with the
        schema and are not exported), users (UserRecord, by id), customers
        (Customer, by id), journals (JournalRecord with all their postings ordered by
        sequence; journals ordered by id), transfers (Transfer, by id; attempts, last_error,
        next_attempt_at and settled_at included, leases left out). Throttles, sessions, server
        secrets, idempotency keys and heartbeats are not exported."""

    async def import_records(self, records: Sequence[DataRecord]) -> None:
        """Write the records as given, in one transaction, every id kept.

        Accounts with their balance and blocked flag (a system account is created if missing,
        else left as is); users with their pin hash (their account comes as an AccountRecord,
        not made here); customers; journals with their postings (sequence, balances and times
        kept; no balance is touched: balances come from the AccountRecords); transfers
        (unleased; a missing next_attempt_at is stored as created_at). The caller sends kinds
        in RECORD_KINDS order (a journal after the accounts it posts to). After the import,
        new postings get sequences above every imported one. Raises ValueError when an id (or
        a phone number, nik, no_hp or no_rekening) already exists; nothing of the batch is
        written then.
        """

    # -- dashboard operators (issue 4) --------------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        """Create an operator. Raises OperatorTaken if the username exists."""

    async def find_operator(self, username: str) -> Operator | None: ...

    async def remove_operator(self, username: str, now: datetime) -> bool:
        """Delete the operator and end every session of theirs, in one transaction; False if
        there was no such operator."""

    # -- scale-out dispatch (issue 4) ---------------------------------------------------------
    async def overdue_transfers(self, due_before: datetime, limit: int) -> list[Transfer]:
        """PENDING transfers due at or before ``due_before`` (claimed or not), oldest due first.

        The SAQ sweep re-enqueues these: they waited too long for their queue job.
        """

    # -- idempotency-key purge (expired keys are deleted, never a live one) -------------------
    async def purge_idempotency(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` idempotency keys whose ``expires_at`` is before ``before``;
        return how many were deleted. One short write transaction.

        Only keys that ``claim_idempotency`` at ``before`` would treat as expired (and so
        reclaim) are deleted: a key within its TTL, answered or in flight, is never touched.
        """
