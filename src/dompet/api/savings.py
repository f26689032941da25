"""The savings ("Tabungan") routes (SPEC.md section 2). Every error is HTTP 400 {"remark"}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dompet.api import savings_schemas as s
from dompet.api.deps import ContainerDep
from dompet.api.idempotency import Idempotency
from dompet.api.presenters import SavingsPresenter
from dompet.api.responses import json_response
from dompet.api.routing import SavingsRoute
from dompet.domain.idempotency import IdempotencyKey
from dompet.domain.savings import check_account_number

router = APIRouter(route_class=SavingsRoute, tags=["Tabungan"])

_UNKNOWN: dict[int | str, dict[str, Any]] = {
    400: {"model": s.Remark, "description": "Invalid input, or the no_rekening is unknown"},
}
_MONEY: dict[int | str, dict[str, Any]] = {
    400: {
        "model": s.Remark,
        "description": (
            "Invalid input, unknown no_rekening, saldo too low (tarik), or an Idempotency-Key "
            "reused with another body or still in flight"
        ),
    },
}
_IDEMPOTENCY_NOTE = (
    "Send an `Idempotency-Key` header (1-255 characters) to make a retry safe: the same key "
    "with the same body replays the first answer and moves no money; the same key with another "
    "body (or while the first request is in flight) is refused with 400. Keys belong to the "
    "no_rekening."
)


def _presenter(request: Request) -> SavingsPresenter:
    presenter: SavingsPresenter = request.app.state.savings_presenter
    return presenter


def _idempotency(request: Request) -> Idempotency:
    idem: Idempotency = request.app.state.idempotency
    return idem


def _saldo(saldo: int) -> Response:
    return json_response({"saldo": saldo})


@router.post(
    "/daftar",
    response_model=s.DaftarResult,
    responses={
        400: {
            "model": s.Remark,
            "description": "Invalid input, or the nik / no_hp is already registered",
        }
    },
    summary="Register a savings customer; get their new no_rekening",
)
async def daftar(body: s.DaftarRequest, c: ContainerDep) -> Response:
    customer = await c.savings.daftar(body.nama, body.nik, body.no_hp)
    return json_response({"no_rekening": customer.no_rekening})


@router.post(
    "/tabung",
    response_model=s.SaldoResult,
    responses=_MONEY,
    summary="Deposit (tabung) into an account; returns the new saldo",
    description=_IDEMPOTENCY_NOTE,
)
async def tabung(body: s.MoneyRequest, request: Request, c: ContainerDep) -> Response:
    no_rekening = check_account_number(body.no_rekening)

    async def run(idem: IdempotencyKey | None) -> Response:
        return _saldo((await c.savings.tabung(no_rekening, body.nominal, idem)).balance_after)

    async def replay(journal_id: str) -> Response:
        return _saldo((await c.savings.replay(no_rekening, journal_id)).balance_after)

    return await _idempotency(request).run(request, f"savings:{no_rekening}", body, run, replay)


@router.post(
    "/tarik",
    response_model=s.SaldoResult,
    responses=_MONEY,
    summary="Withdraw (tarik) from an account; returns the new saldo",
    description="Never overdraws: when the saldo is short, nothing changes. " + _IDEMPOTENCY_NOTE,
)
async def tarik(body: s.MoneyRequest, request: Request, c: ContainerDep) -> Response:
    no_rekening = check_account_number(body.no_rekening)

    async def run(idem: IdempotencyKey | None) -> Response:
        return _saldo((await c.savings.tarik(no_rekening, body.nominal, idem)).balance_after)

    async def replay(journal_id: str) -> Response:
        return _saldo((await c.savings.replay(no_rekening, journal_id)).balance_after)

    return await _idempotency(request).run(request, f"savings:{no_rekening}", body, run, replay)


@router.get(
    "/saldo/{no_rekening}",
    response_model=s.SaldoResult,
    responses=_UNKNOWN,
    summary="The account's saldo",
)
async def saldo(no_rekening: str, c: ContainerDep) -> Response:
    return _saldo(await c.savings.saldo(no_rekening))


@router.get(
    "/mutasi/{no_rekening}",
    response_model=s.MutasiResult,
    responses=_UNKNOWN,
    summary="The account's movements, oldest first",
    description=(
        "`waktu`: ISO 8601 in the display time zone with its UTC offset; `kode_transaksi`: "
        "`C` for tabung (credit), `D` for tarik (debit); `nominal`: the amount."
    ),
)
async def mutasi(no_rekening: str, request: Request, c: ContainerDep) -> Response:
    presenter = _presenter(request)
    entries = await c.savings.mutasi(no_rekening)
    return json_response({"mutasi": [presenter.mutasi_item(e) for e in entries]})
