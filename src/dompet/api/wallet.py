"""The e-wallet routes (SPEC.md section 1; POST /logout: section 4, "Sessions")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from dompet.api import schemas as s
from dompet.api.client import client_address
from dompet.api.deps import CallerDep, ContainerDep
from dompet.api.idempotency import Idempotency
from dompet.api.openapi import BEARER
from dompet.api.presenters import WalletPresenter
from dompet.api.responses import json_response, wallet_ok, wallet_ok_json
from dompet.api.routing import WalletRoute
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.users import ProfileChanges
from dompet.services.ports import TokenPair
from dompet.services.wallet import NewUserRequest

router = APIRouter(route_class=WalletRoute, tags=["E-wallet"])

MAX_CURSOR = 2**63 - 1
"""Entry sequences are 64-bit integers: a larger cursor is invalid input, not a database error."""

_FAILURES: dict[int | str, dict[str, Any]] = {
    400: {"model": s.Failure, "description": "Invalid input or business rule"},
    401: {"model": s.Failure, "description": "Unauthenticated"},
}
_TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {"model": s.Failure, "description": "Too many attempts; see Retry-After"},
    503: {"model": s.Failure, "description": "PIN hashing is at its limit; see Retry-After"},
}
NO_STORE = {"Cache-Control": "no-store"}
"""On every answer that carries tokens: no cache, proxy or browser history may keep them."""
_MONEY_FAILURES: dict[int | str, dict[str, Any]] = {
    **_FAILURES,
    409: {"model": s.Failure, "description": "Idempotency-Key reused or in flight"},
}


def _presenter(request: Request) -> WalletPresenter:
    presenter: WalletPresenter = request.app.state.wallet_presenter
    return presenter


def _idempotency(request: Request) -> Idempotency:
    idem: Idempotency = request.app.state.idempotency
    return idem


# Money routes first: routing tries routes in order, and these carry the load. The documented
# order (api/openapi.py) is the specification's, whatever the order here.


@router.post(
    "/topup",
    openapi_extra=BEARER,
    response_model=s.Envelope[s.TopUpResult],
    responses=_MONEY_FAILURES,
    summary="Top up the caller's balance",
)
async def top_up(body: s.TopUpRequest, request: Request, me: CallerDep) -> Response:
    presenter, wallet, user_id = _presenter(request), me.container.wallet, me.user_id

    async def run(idem: IdempotencyKey | None) -> Response:
        return wallet_ok(presenter.receipt(await wallet.top_up(user_id, body.amount, idem)))

    async def replay(journal_id: str) -> Response:
        return wallet_ok(presenter.receipt(await wallet.replay(user_id, journal_id)))

    return await _idempotency(request).run(request, user_id, body, run, replay)


@router.post(
    "/pay",
    openapi_extra=BEARER,
    response_model=s.Envelope[s.PaymentResult],
    responses=_MONEY_FAILURES,
    summary="Pay from the caller's balance",
)
async def pay(body: s.PayRequest, request: Request, me: CallerDep) -> Response:
    presenter, wallet, user_id = _presenter(request), me.container.wallet, me.user_id

    async def run(idem: IdempotencyKey | None) -> Response:
        entry = await wallet.pay(user_id, body.amount, body.remarks, idem)
        return wallet_ok(presenter.receipt(entry))

    async def replay(journal_id: str) -> Response:
        return wallet_ok(presenter.receipt(await wallet.replay(user_id, journal_id)))

    return await _idempotency(request).run(request, user_id, body, run, replay)


@router.post(
    "/transfer",
    openapi_extra=BEARER,
    response_model=s.Envelope[s.TransferResult],
    responses={
        **_MONEY_FAILURES,
        404: {"model": s.Failure, "description": "Target user not found"},
    },
    summary="Transfer to another user (debited now, credited in the background)",
)
async def transfer(body: s.TransferRequest, request: Request, me: CallerDep) -> Response:
    presenter, wallet, user_id = _presenter(request), me.container.wallet, me.user_id

    async def run(idem: IdempotencyKey | None) -> Response:
        entry = await wallet.transfer(user_id, body.target_user, body.amount, body.remarks, idem)
        return wallet_ok(presenter.receipt(entry))

    async def replay(journal_id: str) -> Response:
        return wallet_ok(presenter.receipt(await wallet.replay(user_id, journal_id)))

    return await _idempotency(request).run(request, user_id, body, run, replay)


@router.get(
    "/transactions",
    openapi_extra=BEARER,
    response_model=s.Envelope[list[s.TransactionItem]],
    responses={401: _FAILURES[401]},
    summary="The caller's entries, newest first",
    description=(
        "Without parameters the whole history is returned. With `limit`, one page is returned "
        "and, when more remain, the `X-Next-Cursor` response header holds the value to pass as "
        "`cursor` for the next (older) page."
    ),
)
async def transactions(
    request: Request,
    me: CallerDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_CURSOR)] = None,
) -> Response:
    presenter = _presenter(request)
    user_id, wallet = me.user_id, me.container.wallet
    if presenter.item_layout is not None:  # the store builds the items' JSON if it can
        items = await wallet.history_items(user_id, presenter.item_layout, limit, cursor)
        if items is not None:
            return wallet_ok_json(items.body, _next_cursor(limit, items.size, items.last_sequence))
    entries = await wallet.history(user_id, limit=limit, before=cursor)
    return json_response(
        {"status": "SUCCESS", "result": presenter.transactions(entries, user_id)},
        headers=_next_cursor(limit, len(entries), entries[-1].sequence if entries else None),
    )


def _next_cursor(limit: int | None, size: int, last: int | None) -> dict[str, str] | None:
    """The X-Next-Cursor header of a full page (the last entry's sequence)."""
    if limit is None or size != limit or last is None:
        return None
    return {"X-Next-Cursor": str(last)}


@router.put(
    "/profile",
    openapi_extra=BEARER,
    response_model=s.Envelope[s.ProfileResult],
    responses=_FAILURES,
    summary="Change first_name, last_name and/or address (nothing else)",
)
async def update_profile(body: s.ProfileRequest, request: Request, me: CallerDep) -> Response:
    user = await me.container.wallet.update_profile(
        me.user_id,
        ProfileChanges(first_name=body.first_name, last_name=body.last_name, address=body.address),
    )
    return wallet_ok(_presenter(request).profile(user))


@router.post(
    "/register",
    response_model=s.Envelope[s.UserResult],
    responses={
        400: _FAILURES[400],
        409: {"model": s.Failure, "description": "Phone Number already registered"},
        **_TOO_MANY,
    },
    summary="Register a new user",
    description=(
        "At most REGISTRATIONS_PER_CLIENT registrations per client address per "
        "CLIENT_LIMIT_WINDOW_SECONDS, then 429 with `Retry-After`."
    ),
)
async def register(body: s.RegisterRequest, request: Request, c: ContainerDep) -> Response:
    user = await c.wallet.register(
        NewUserRequest(
            first_name=body.first_name,
            last_name=body.last_name,
            phone_number=body.phone_number,
            address=body.address,
            pin=body.pin,
        ),
        client_address(request),
    )
    return wallet_ok(_presenter(request).user(user))


@router.post(
    "/login",
    response_model=s.Envelope[s.TokensResult],
    responses={
        401: {"model": s.Failure, "description": "Phone number and pin doesn't match."},
        **_TOO_MANY,
    },
    summary="Log in with phone number and PIN; start a session (a JWT pair)",
    description=(
        "After LOGIN_MAX_FAILURES failed logins in a row for a number, it is locked for "
        "LOGIN_LOCK_SECONDS (429 with `Retry-After`, even with the right PIN); failed logins "
        "per client address are limited too. The answer carries `Cache-Control: no-store`."
    ),
)
async def login(body: s.LoginRequest, request: Request, c: ContainerDep) -> Response:
    pair = await c.wallet.login(body.phone_number, body.pin, client_address(request))
    return _tokens(pair)


@router.post(
    "/refresh",
    response_model=s.Envelope[s.TokensResult],
    responses={401: _FAILURES[401]},
    summary="Trade a refresh token (once) for the session's next pair",
    description=(
        "Each refresh token works once. Presenting one again ends its whole session: every "
        "token of it is refused from then on. The answer carries `Cache-Control: no-store`."
    ),
)
async def refresh(body: s.RefreshRequest, c: ContainerDep) -> Response:
    return _tokens(await c.wallet.refresh(body.refresh_token))


def _tokens(pair: TokenPair) -> Response:
    result = {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
    return json_response({"status": "SUCCESS", "result": result}, headers=NO_STORE)


@router.post(
    "/logout",
    openapi_extra=BEARER,
    response_model=s.Envelope[s.LogoutResult],
    responses={400: _FAILURES[400], 401: _FAILURES[401]},
    summary="End the caller's session (or, with all=true, every session of the caller)",
    description=(
        "The body is `{}` or none. The session's access and refresh tokens are refused from "
        "then on (with `all=true`: those of every session of the caller)."
    ),
)
async def logout(
    me: CallerDep,
    body: Annotated[s.LogoutRequest | None, Body(examples=[{}])] = None,
    everywhere: Annotated[
        bool, Query(alias="all", description="End every session of the caller")
    ] = False,
) -> Response:
    ended = await me.container.wallet.logout(me.claims, everywhere)
    return wallet_ok({"sessions_ended": ended})
