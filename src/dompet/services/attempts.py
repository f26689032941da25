"""Attempt limits, taken before any PIN or password is checked (issue 19).

* **The login lock**, per phone number (wallet) or username (dashboard): at most
  LOGIN_MAX_FAILURES attempts in a row, then none for LOGIN_LOCK_SECONDS; a success clears it.
* **Per client address**: at most LOGIN_FAILURES_PER_CLIENT failed logins and
  REGISTRATIONS_PER_CLIENT registrations per CLIENT_LIMIT_WINDOW_SECONDS (0: no limit).

Each attempt is *taken* from the store's throttle in one atomic step before the Argon2 work,
and counts as a failure unless it succeeds (a successful login clears the lock's count and
gives the client's attempt back). So N parallel wrong PINs get at most LOGIN_MAX_FAILURES
checks, whatever N and however many processes serve them; the rest are refused at once (429
with Retry-After) and cost no hashing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from dompet.domain.errors import TooManyAttempts
from dompet.domain.sessions import ThrottleRule
from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

Locked = Callable[[int], TooManyAttempts]
"""The refusal of a locked account, given the seconds until it takes attempts again."""
_PLAIN = re.compile(r"[A-Za-z0-9.:_+-]{1,64}")


def throttle_key(kind: str, value: str) -> str:
    """``kind:value``. A value that is not a plain username, phone number or IP address (a
    form's 4 KiB username, a NUL, a proxy's header) is keyed by its SHA-256: every key fits the
    store's column and is text every database takes."""
    if _PLAIN.fullmatch(value) is None:
        value = "sha256=" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{value}"


@dataclass(frozen=True, slots=True)
class AttemptPolicy:
    login_max_failures: int = 5
    login_lock_seconds: int = 300
    login_failures_per_client: int = 50
    registrations_per_client: int = 20
    client_window_seconds: int = 900


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login attempt taken: what to give back if it succeeds."""

    account_key: str
    client_key: str | None


class AttemptLimits:
    def __init__(self, store: LedgerStore, clock: Clock, policy: AttemptPolicy) -> None:
        self._store = store
        self._now = clock
        self._lock = ThrottleRule(
            policy.login_max_failures,
            timedelta(seconds=policy.login_lock_seconds),
            sliding=True,
        )
        window = timedelta(seconds=policy.client_window_seconds)
        self._client_logins = (
            ThrottleRule(policy.login_failures_per_client, window)
            if policy.login_failures_per_client
            else None
        )
        self._registrations = (
            ThrottleRule(policy.registrations_per_client, window)
            if policy.registrations_per_client
            else None
        )

    async def login(self, account_key: str, client: str | None, locked: Locked) -> LoginAttempt:
        """Take an attempt for the client address, then for the account; raise the client's
        refusal or ``locked(seconds)`` when either is used up."""
        now = self._now()
        client_key = None
        if client and self._client_logins is not None:
            client_key = throttle_key("login-from", client)
            hit = await self._store.take_throttle(client_key, now, self._client_logins)
            if not hit.granted:
                raise TooManyAttempts(
                    "Too many failed login attempts from this address. "
                    f"Try again in {hit.retry_after(now)} seconds.",
                    hit.retry_after(now),
                )
        hit = await self._store.take_throttle(account_key, now, self._lock)
        if not hit.granted:
            if client_key is not None:  # no PIN was checked: not the client's failure
                await self._store.release_throttle(client_key, now)
            raise locked(hit.retry_after(now))
        return LoginAttempt(account_key, client_key)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The attempt's credentials were right: clear the account's count, give the client's
        attempt back."""
        await self._store.clear_throttle(attempt.account_key)
        if attempt.client_key is not None:
            await self._store.release_throttle(attempt.client_key, self._now())

    async def registration(self, client: str | None) -> None:
        """Take a registration for the client address (every attempt counts)."""
        if not client or self._registrations is None:
            return
        now = self._now()
        key = throttle_key("register-from", client)
        hit = await self._store.take_throttle(key, now, self._registrations)
        if not hit.granted:
            raise TooManyAttempts(
                "Too many registrations from this address. "
                f"Try again in {hit.retry_after(now)} seconds.",
                hit.retry_after(now),
            )
