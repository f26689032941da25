"""Every business error Dompet can raise. The API maps these to HTTP in exactly one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected, user-facing failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailable(DomainError):
    """The database cannot serve the request now: down, unreachable, too slow, too busy, or its
    disk is full. Not the caller's error (the API answers 503 with ``Retry-After``). A write
    that failed so may or may not have been made: retry it with the same Idempotency-Key."""

    def __init__(
        self, message: str, retry_after_seconds: int = 1, overloaded: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.overloaded = overloaded
        """The database is there but slow or saturated (a timeout, too many waiting): do not
        add work for it (a clean-up can wait for the retry)."""


class InvalidInput(DomainError):
    """A value breaks a rule of the domain (wrong amount, bad phone number ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InsufficientFunds(DomainError):
    def __init__(self) -> None:
        super().__init__("Balance is not enough")


class AccountBlocked(DomainError):
    """The account may not receive or send money (an operator blocked it)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account {account_id} is blocked")
        self.account_id = account_id


class AccountNotFound(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"Account {account_id} not found")
        self.account_id = account_id


class PhoneTaken(DomainError):
    def __init__(self) -> None:
        super().__init__("Phone Number already registered")


class InvalidCredentials(DomainError):
    def __init__(self) -> None:
        super().__init__("Phone number and pin doesn't match.")


class TooManyAttempts(DomainError):
    """A throttle refused the attempt (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class LoginLocked(TooManyAttempts):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "Too many failed login attempts for this phone number. "
            f"Try again in {retry_after_seconds} seconds.",
            retry_after_seconds,
        )


class ServerBusy(DomainError):
    """The bounded work (PIN hashing) is at its limit: try again shortly (HTTP 503)."""

    def __init__(self, retry_after_seconds: int = 1) -> None:
        super().__init__(f"The server is busy. Try again in {retry_after_seconds} seconds.")
        self.retry_after_seconds = retry_after_seconds


class BalanceLimitExceeded(DomainError):
    """A credit would take a balance above what the ledger holds (domain/money.py)."""

    def __init__(self) -> None:
        super().__init__("Balance limit exceeded")


class Unauthenticated(DomainError):
    def __init__(self) -> None:
        super().__init__("Unauthenticated")


class TargetNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("Target user not found")


class SelfTransfer(DomainError):
    def __init__(self) -> None:
        super().__init__("Cannot transfer to yourself")


class TransferNotFound(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"Transfer {transfer_id} not found")


class IdempotencyConflict(DomainError):
    """An Idempotency-Key was reused with another request, or while the first is in flight."""


class NikTaken(DomainError):
    def __init__(self) -> None:
        super().__init__("nik sudah terdaftar (nik already registered)")


class NoHpTaken(DomainError):
    def __init__(self) -> None:
        super().__init__("no_hp sudah terdaftar (no_hp already registered)")


class UnknownAccountNumber(DomainError):
    def __init__(self) -> None:
        super().__init__("no_rekening tidak dikenali (unknown no_rekening)")


class SavingsInsufficientFunds(DomainError):
    def __init__(self) -> None:
        super().__init__("saldo tidak cukup (balance is not enough)")


class AccountNumberTaken(DomainError):
    """A freshly drawn no_rekening collided with an existing one; draw again."""

    def __init__(self) -> None:
        super().__init__("no_rekening already exists")


# -- operators and the dashboard (issue 4) ------------------------------------------------
class OperatorTaken(DomainError):
    def __init__(self, username: str) -> None:
        super().__init__(f"Operator {username} already exists")


class CsrfRejected(DomainError):
    """A dashboard POST without the session's CSRF token."""

    def __init__(self) -> None:
        super().__init__("Missing or wrong CSRF token")


class TransferNotRetryable(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"Transfer {transfer_id} is not PENDING: nothing to retry")
