"""The Idempotency-Key header on money-moving routes: replay, refuse, or run once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from dompet.api.errors import BadRequest, domain_error_response
from dompet.api.routing import shape_of
from dompet.domain.errors import DomainError, IdempotencyConflict, StoreUnavailable
from dompet.domain.idempotency import (
    Claimed,
    IdempotencyKey,
    ReplayJournal,
    ReplayResponse,
    fingerprint,
)
from dompet.services.ports import Clock
from dompet.storage.port import LedgerStore

HEADER = "Idempotency-Key"

UNRELEASED_KEPT = 10_000
"""Claims whose release failed (the database was unavailable) remembered per process."""


def request_fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What "the same request" means: the route and the validated body, canonically encoded
    (so key order, whitespace and defaulted fields do not matter)."""
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return fingerprint(f"{method} {path}", canonical)


class Idempotency:
    def __init__(
        self, store: LedgerStore, clock: Clock, ttl: timedelta, in_flight: timedelta
    ) -> None:
        self._store = store
        self._now = clock
        self._ttl = ttl
        self._in_flight = in_flight
        self._unreleased: OrderedDict[tuple[str, str], IdempotencyKey] = OrderedDict()
        """Claims left behind by a failure that could not release them (see ``_abandon``)."""

    async def run(
        self,
        request: Request,
        scope: str,
        body: BaseModel,
        operation: Callable[[IdempotencyKey | None], Awaitable[Response]],
        replay: Callable[[str], Awaitable[Response]],
    ) -> Response:
        """Run ``operation`` once per (caller, key); replay the first answer after that."""
        raw = request.headers.get(HEADER)
        if raw is None:
            return await operation(None)
        if not 1 <= len(raw) <= 255 or not raw.isprintable():
            raise BadRequest(f"{HEADER} must be 1 to 255 printable characters")
        key = IdempotencyKey(
            scope=scope,
            key=raw,
            fingerprint=request_fingerprint(request.method, request.url.path, body),
        )
        left = self._unreleased.pop((key.scope, key.key), None)
        if left is not None:  # this process failed to release it: do it now, then claim
            await self._release(left)
        try:
            outcome = await self._store.claim_idempotency(
                key, self._now(), self._ttl, self._in_flight
            )
        except StoreUnavailable:
            self._remember(key)  # the claim may have been made: its retry releases it first
            raise
        if isinstance(outcome, ReplayJournal):
            return await replay(outcome.journal_id)
        if isinstance(outcome, ReplayResponse):
            return Response(outcome.body, outcome.status, media_type="application/json")
        assert isinstance(outcome, Claimed)
        try:
            return await operation(key)
        except IdempotencyConflict:
            raise
        except StoreUnavailable as exc:
            # Not an answer to remember: the write may or may not have been made. Free the key
            # (a claim tied to a journal is kept: the retry replays it) so the retry runs; a
            # slow or saturated database is not sent the release too: the 503 goes out now,
            # and the retry to this process releases the key first.
            if exc.overloaded:
                self._remember(key)
            else:
                await self._abandon(key)
            raise
        except DomainError as exc:
            response = domain_error_response(shape_of(request), exc)
            await self._store.answer_idempotency(key, response.status_code, bytes(response.body))
            return response
        except BaseException:
            await self._abandon(key)
            raise

    async def _abandon(self, key: IdempotencyKey) -> None:
        """Release ``key``'s unanswered claim. If the database cannot be reached for that
        either, remember the key: its retry to this process releases it first, instead of
        being refused as "in flight" until IDEMPOTENCY_IN_FLIGHT_SECONDS have passed."""
        try:
            await self._store.release_idempotency(key)
        except StoreUnavailable:
            self._remember(key)

    async def _release(self, key: IdempotencyKey) -> None:
        try:
            await self._store.release_idempotency(key)
        except BaseException:
            self._remember(key)  # still owed
            raise

    def _remember(self, key: IdempotencyKey) -> None:
        self._unreleased[(key.scope, key.key)] = key
        while len(self._unreleased) > UNRELEASED_KEPT:
            self._unreleased.popitem(last=False)
