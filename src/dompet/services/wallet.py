"""The e-wallet use cases: register, login, sessions, top up, pay, transfer, history, profile.

A login starts a session (domain/sessions.py); /refresh rotates its one refresh token, and a
refresh token presented a second time ends the session; logout ends one or all of them. Every
authenticated request asks the store whether its session is still live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dompet.domain.errors import (
    AccountNotFound,
    InvalidCredentials,
    InvalidInput,
    LoginLocked,
    SelfTransfer,
    TargetNotFound,
    Unauthenticated,
)
from dompet.domain.history import ItemLayout
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.ids import is_uuid, new_id
from dompet.domain.ledger import (
    Entry,
    Journal,
    entry_for,
    payment_journal,
    topup_journal,
    transfer_out_journal,
    wallet_account,
)
from dompet.domain.money import check_amount
from dompet.domain.phone import normalize_phone
from dompet.domain.sessions import SessionRecord
from dompet.domain.transfers import Transfer, TransferStatus
from dompet.domain.users import ProfileChanges, User
from dompet.services.attempts import AttemptLimits, throttle_key
from dompet.services.ports import (
    MONEY_KINDS,
    AccessClaims,
    Clock,
    MoneyObservers,
    PinHasher,
    TokenCodec,
    TokenPair,
    TransferDispatcher,
)
from dompet.storage.port import LedgerStore, RenderedItems


@dataclass(frozen=True, slots=True)
class NewUserRequest:
    first_name: str
    last_name: str
    phone_number: str
    address: str
    pin: str


class WalletService:
    def __init__(
        self,
        store: LedgerStore,
        pins: PinHasher,
        tokens: TokenCodec,
        dispatcher: TransferDispatcher,
        clock: Clock,
        attempts: AttemptLimits,
        observers: MoneyObservers | None = None,
    ) -> None:
        self._store = store
        self._pins = pins
        self._tokens = tokens
        self._dispatcher = dispatcher
        self._now = clock
        self._attempts = attempts
        self._observers = observers or MoneyObservers()

    async def register(self, request: NewUserRequest, client: str | None = None) -> User:
        """``client``: the caller's address, for the per-client registration limit."""
        phone = normalize_phone(request.phone_number)
        if not request.first_name.strip():
            raise InvalidInput("first_name", "first_name must not be empty")
        _check_pin(request.pin)
        await self._attempts.registration(client)
        pin_hash = await self._pins.hash(request.pin)
        now = self._now()
        user = User(
            id=new_id(),
            first_name=request.first_name.strip(),
            last_name=request.last_name.strip(),
            phone_number=phone,
            address=request.address.strip(),
            created_at=now,
            updated_at=now,
        )
        await self._store.add_user(user, pin_hash)
        return user

    async def login(self, phone_number: str, pin: str, client: str | None = None) -> TokenPair:
        """A new session. The attempt is taken (login lock, per-client limit) before the PIN
        is checked; it counts as a failure unless the PIN is right."""
        try:
            phone = normalize_phone(phone_number)
        except InvalidInput:
            raise InvalidCredentials() from None
        attempt = await self._attempts.login(throttle_key("pin", phone), client, LoginLocked)
        credentials = await self._store.find_credentials(phone)
        if credentials is None:
            await self._pins.waste_time(pin)
            raise InvalidCredentials()
        if not await self._pins.verify(credentials.pin_hash, pin):
            raise InvalidCredentials()
        await self._attempts.succeeded(attempt)
        return await self._start_session(credentials.user_id, self._now())

    async def _start_session(self, user_id: str, now: datetime) -> TokenPair:
        pair = self._tokens.issue(user_id, new_id(), now)
        await self._store.open_session(
            SessionRecord(pair.session_id, user_id, pair.refresh_jti, now, pair.expires_at)
        )
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """The session's next pair. A refresh token that was used before ends its session."""
        now = self._now()
        claims = self._tokens.refresh_claims(refresh_token, now)
        if await self._store.get_user(claims.user_id) is None:
            raise Unauthenticated()
        pair = self._tokens.issue(claims.user_id, claims.session_id, now)
        rotated = await self._store.rotate_session(
            claims.session_id, claims.user_id, claims.jti, pair.refresh_jti, pair.expires_at, now
        )
        if not rotated:
            raise Unauthenticated()
        return pair

    async def authenticate(self, access_token: str) -> AccessClaims:
        """The user and session of a valid access token whose session is live."""
        claims = self._tokens.access_claims(access_token, self._now())
        if not await self._store.session_live(claims.session_id, claims.user_id):
            raise Unauthenticated()
        return claims

    async def logout(self, caller: AccessClaims, everywhere: bool = False) -> int:
        """End the caller's session (every session of the caller: ``everywhere``)."""
        session_id = None if everywhere else caller.session_id
        return await self._store.end_sessions(caller.user_id, self._now(), session_id)

    async def top_up(self, user_id: str, amount: int, idem: IdempotencyKey | None = None) -> Entry:
        journal_id = new_id()
        journal = topup_journal(journal_id, user_id, check_amount(amount), self._now())
        return await self._post(user_id, journal, idem)

    async def pay(
        self, user_id: str, amount: int, remarks: str, idem: IdempotencyKey | None = None
    ) -> Entry:
        journal_id = new_id()
        journal = payment_journal(journal_id, user_id, check_amount(amount), remarks, self._now())
        return await self._post(user_id, journal, idem)

    async def transfer(
        self,
        user_id: str,
        target_user: str,
        amount: int,
        remarks: str,
        idem: IdempotencyKey | None = None,
    ) -> Entry:
        check_amount(amount)
        if not is_uuid(target_user):
            raise InvalidInput("target_user", "target_user must be a user id (UUID)")
        target_user = target_user.lower()
        if target_user == user_id:
            raise SelfTransfer()
        if await self._store.get_user(target_user) is None:
            raise TargetNotFound()
        now = self._now()
        transfer = Transfer(
            id=new_id(),
            sender_id=user_id,
            target_id=target_user,
            amount=amount,
            remarks=remarks,
            status=TransferStatus.PENDING,
            created_at=now,
        )
        journal = transfer_out_journal(new_id(), transfer.id, user_id, amount, remarks, now)
        try:
            entries = await self._store.open_transfer(transfer, journal, idem)
        except AccountNotFound:
            raise Unauthenticated() from None
        self._observers.money_moved("transfer", amount)
        await self._dispatcher.transfer_accepted(transfer)
        return entry_for(entries, wallet_account(user_id))

    async def replay(self, user_id: str, journal_id: str) -> Entry:
        """The caller's entry of an earlier journal (an idempotent replay)."""
        entry = await self._store.entry_of_journal(journal_id, wallet_account(user_id))
        if entry is None:  # pragma: no cover - the key and the journal commit together
            raise LookupError(journal_id)
        return entry

    async def history(
        self, user_id: str, limit: int | None = None, before: int | None = None
    ) -> list[Entry]:
        return await self._store.entries(wallet_account(user_id), limit=limit, before=before)

    async def history_items(
        self,
        user_id: str,
        layout: ItemLayout,
        limit: int | None = None,
        before: int | None = None,
    ) -> RenderedItems | None:
        """:meth:`history` rendered by the store as ``layout`` says; None if it does not."""
        return await self._store.render_entries(
            wallet_account(user_id), user_id, layout, limit=limit, before=before
        )

    async def update_profile(self, user_id: str, changes: ProfileChanges) -> User:
        if not changes.as_dict():
            raise InvalidInput("body", "Give at least one of first_name, last_name, address")
        if changes.first_name is not None and not changes.first_name.strip():
            raise InvalidInput("first_name", "first_name must not be empty")
        cleaned = ProfileChanges(**{k: v.strip() for k, v in changes.as_dict().items()})
        user = await self._store.update_profile(user_id, cleaned, self._now())
        if user is None:
            raise Unauthenticated()
        return user

    async def _post(self, user_id: str, journal: Journal, idem: IdempotencyKey | None) -> Entry:
        try:
            entries = await self._store.post_journal(journal, idem)
        except AccountNotFound:
            raise Unauthenticated() from None
        entry = entry_for(entries, wallet_account(user_id))
        self._observers.money_moved(MONEY_KINDS[journal.kind], entry.amount)
        return entry


def _check_pin(pin: str) -> None:
    if len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        raise InvalidInput("pin", "pin must be exactly 6 digits")
