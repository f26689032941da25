"""The Idempotency-Key header on money-moving routes: replay, refuse, or run once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from dompet.api.errors import BadRequest, domain_error_response
from dompet.api.routing import shape_of
from dompet.domain.errors import DomainError, IdempotencyConflict
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
        outcome = await self._store.claim_idempotency(key, self._now(), self._ttl, self._in_flight)
        if isinstance(outcome, ReplayJournal):
            return await replay(outcome.journal_id)
        if isinstance(outcome, ReplayResponse):
            return Response(outcome.body, outcome.status, media_type="application/json")
        assert isinstance(outcome, Claimed)
        try:
            return await operation(key)
        except IdempotencyConflict:
            raise
        except DomainError as exc:
            response = domain_error_response(shape_of(request), exc)
            await self._store.answer_idempotency(key, response.status_code, bytes(response.body))
            return response
        except BaseException:
            await self._store.release_idempotency(key)
            raise
