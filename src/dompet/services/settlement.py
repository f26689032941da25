"""Settling transfers in the background: credit the target exactly once, or refund the sender."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from dompet.domain.errors import DomainError, StoreUnavailable
from dompet.domain.ids import new_id
from dompet.domain.ledger import refund_journal, settlement_journal
from dompet.domain.transfers import RetryPolicy, Transfer, TransferStatus
from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SETTLED = "settled"
    """Credited to the target just now."""
    ALREADY_FINAL = "already_final"
    """Someone else settled or refunded it: nothing to do (deliveries may repeat)."""
    RETRY_LATER = "retry_later"
    REFUNDED = "refunded"
    """It could never be credited: FAILED, and the sender got the money back."""
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class SettlementResult:
    transfer_id: str
    outcome: Outcome
    error: str = ""


class SettlementService:
    """``settle`` may be called any number of times for one transfer, from any worker."""

    def __init__(self, store: LedgerStore, clock: Clock, policy: RetryPolicy) -> None:
        self._store = store
        self._now = clock
        self._policy = policy

    async def settle(self, transfer_id: str) -> SettlementResult:
        transfer = await self._store.get_transfer(transfer_id)
        if transfer is None:
            return SettlementResult(transfer_id, Outcome.NOT_FOUND)
        return await self.settle_transfer(transfer)

    async def try_settle_now(self, transfer: Transfer) -> SettlementResult | None:
        """First attempt at a fresh transfer, right after it was accepted, without a claim
        (and without reading it back: ``transfer`` is the row as it was committed).

        Returns None when the transfer needs the claimed path instead: it failed (the claimed
        path records the failure and retries), or it is already being retried. Safe beside a
        worker that claimed the same transfer, or a second hand-over of it: ``close_transfer``
        credits only a transfer that is still PENDING, once.
        """
        if transfer.attempts > 0:
            return None
        if transfer.status is not TransferStatus.PENDING:
            return SettlementResult(transfer.id, Outcome.ALREADY_FINAL)
        try:
            done = await self._credit(transfer)
        except Exception:  # DomainError (e.g. a blocked target) or the store: claimed path
            log.debug("first settlement attempt of %s failed", transfer.id, exc_info=True)
            return None
        return SettlementResult(transfer.id, Outcome.SETTLED if done else Outcome.ALREADY_FINAL)

    async def settle_transfer(self, transfer: Transfer) -> SettlementResult:
        if transfer.status is not TransferStatus.PENDING:
            return SettlementResult(transfer.id, Outcome.ALREADY_FINAL)
        try:
            done = await self._credit(transfer)
        except StoreUnavailable:
            # The database's failure, not the transfer's: no attempt is spent (an outage must
            # not exhaust the retries and refund a transfer that can be credited). It stays
            # PENDING: the claim's lease or the SAQ sweep brings it back.
            raise
        except DomainError as exc:
            return await self._failed_attempt(transfer, exc.message)
        except Exception as exc:
            log.exception("settlement of %s failed", transfer.id)
            return await self._failed_attempt(transfer, f"{type(exc).__name__}: {exc}")
        return SettlementResult(transfer.id, Outcome.SETTLED if done else Outcome.ALREADY_FINAL)

    async def _credit(self, transfer: Transfer) -> bool:
        """Credit the target and mark the transfer SUCCESS; False if it was already final."""
        now = self._now()
        journal = settlement_journal(
            new_id(), transfer.id, transfer.target_id, transfer.amount, transfer.remarks, now
        )
        return await self._store.close_transfer(transfer.id, TransferStatus.SUCCESS, journal, now)

    async def _failed_attempt(self, transfer: Transfer, error: str) -> SettlementResult:
        attempts = transfer.attempts + 1
        if self._policy.exhausted(attempts):
            return await self.refund(transfer, error)
        await self._store.record_settlement_failure(
            transfer.id, error, self._now() + self._policy.delay_after(attempts)
        )
        return SettlementResult(transfer.id, Outcome.RETRY_LATER, error)

    async def refund(self, transfer: Transfer, error: str) -> SettlementResult:
        """Give up: FAILED, and a reversing journal gives the sender the money back."""
        await self._store.record_settlement_failure(transfer.id, error, self._now())
        now = self._now()
        journal = refund_journal(
            new_id(), transfer.id, transfer.sender_id, transfer.amount, transfer.remarks, now
        )
        done = await self._store.close_transfer(transfer.id, TransferStatus.FAILED, journal, now)
        return SettlementResult(
            transfer.id, Outcome.REFUNDED if done else Outcome.ALREADY_FINAL, error
        )
