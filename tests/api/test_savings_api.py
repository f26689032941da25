"""The savings ("Tabungan") API, SPEC.md section 2, over HTTP on every engine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dompet.config import Settings
from dompet.container import Container
from dompet.domain.invariants import check
from dompet.domain.money import MAX_AMOUNT
from dompet.domain.savings import damm_digit, is_valid_account_number
from tests.conftest import AsyncClientContext, fast_settings

_serial = itertools.count(1)


class Api:
    """The client plus the container behind it (for invariant checks)."""

    def __init__(self, http: httpx.AsyncClient, container: Container) -> None:
        self.http = http
        self.container = container

    async def daftar(self, **overrides: Any) -> str:
        n = next(_serial)
        body = {"nama": f"Nasabah {n}", "nik": f"{3171000000000000 + n}", "no_hp": f"08123{n:07d}"}
        body.update(overrides)
        response = await self.http.post("/daftar", json=body)
        assert response.status_code == 200, response.text
        no_rekening: str = response.json()["no_rekening"]
        return no_rekening

    async def saldo(self, no_rekening: str) -> int:
        response = await self.http.get(f"/saldo/{no_rekening}")
        assert response.status_code == 200, response.text
        saldo: int = response.json()["saldo"]
        return saldo

    async def mutasi(self, no_rekening: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/mutasi/{no_rekening}")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["mutasi"]
        return items

    async def tabung(self, no_rekening: str | int, nominal: int) -> int:
        response = await self.http.post(
            "/tabung", json={"no_rekening": no_rekening, "nominal": nominal}
        )
        assert response.status_code == 200, response.text
        saldo: int = response.json()["saldo"]
        return saldo

    async def invariants_hold(self) -> None:
        report = check(await self.container.store.snapshot())
        assert report.ok, report.violations


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    context = AsyncClientContext(settings)
    async with context as http:
        assert context.container is not None
        yield Api(http, context.container)


def remark_of(response: httpx.Response) -> str:
    """Every savings error: HTTP 400 with exactly {"remark": "<text>"}."""
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"remark"}, body
    assert isinstance(body["remark"], str)
    assert body["remark"]
    remark: str = body["remark"]
    return remark


def mistyped(no_rekening: str) -> str:
    """The number with one digit changed (never the first to 0): fails the check digit."""
    i = 5
    wrong = no_rekening[:i] + str((int(no_rekening[i]) + 1) % 10) + no_rekening[i + 1 :]
    assert not is_valid_account_number(wrong)
    return wrong


def unregistered_valid_number() -> str:
    body = "100000001"
    return body + str(damm_digit(body))


# -- /daftar -----------------------------------------------------------------------------------
async def test_daftar_returns_a_fresh_valid_no_rekening(api: Api) -> None:
    response = await api.http.post(
        "/daftar", json={"nama": "Siti Aminah", "nik": "3171234567890001", "no_hp": "0811255501"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"no_rekening"}
    no_rekening = body["no_rekening"]
    assert isinstance(no_rekening, str)
    assert is_valid_account_number(no_rekening)
    assert await api.saldo(no_rekening) == 0
    assert await api.mutasi(no_rekening) == []
    second = await api.daftar()
    assert second != no_rekening
    assert abs(int(second) - int(no_rekening)) != 1
    customer = await api.container.store.get_customer(no_rekening)
    assert customer is not None
    assert (customer.nama, customer.nik, customer.no_hp) == (
        "Siti Aminah",
        "3171234567890001",
        "0811255501",
    )


async def test_daftar_stores_nama_trimmed_and_no_hp_in_local_form(api: Api) -> None:
    no_rekening = await api.daftar(nama="  Budi  ", no_hp="+62811255502")
    customer = await api.container.store.get_customer(no_rekening)
    assert customer is not None
    assert (customer.nama, customer.no_hp) == ("Budi", "0811255502")


async def test_nik_taken_names_nik(api: Api) -> None:
    await api.daftar(nik="3171234567890001", no_hp="0811255501")
    response = await api.http.post(
        "/daftar", json={"nama": "Lain", "nik": "3171234567890001", "no_hp": "0811255599"}
    )
    remark = remark_of(response)
    assert "nik" in remark
    assert "no_hp" not in remark


@pytest.mark.parametrize("same_number", ["0811255501", "62811255501", "+62811255501"])
async def test_no_hp_taken_names_no_hp_in_any_form(api: Api, same_number: str) -> None:
    await api.daftar(nik="3171234567890001", no_hp="+62811255501")
    response = await api.http.post(
        "/daftar", json={"nama": "Lain", "nik": "3171234567890002", "no_hp": same_number}
    )
    remark = remark_of(response)
    assert "no_hp" in remark
    assert "nik" not in remark


async def test_a_refused_daftar_opens_no_account(api: Api) -> None:
    await api.daftar(nik="3171234567890001", no_hp="0811255501")
    before = await api.container.store.snapshot()
    for body in (
        {"nama": "X", "nik": "3171234567890001", "no_hp": "0811255598"},
        {"nama": "X", "nik": "3171234567890009", "no_hp": "0811255501"},
    ):
        remark_of(await api.http.post("/daftar", json=body))
    after = await api.container.store.snapshot()
    assert after.customer_balances.keys() == before.customer_balances.keys()


DAFTAR_OK = {"nama": "Siti", "nik": "3171234567890001", "no_hp": "0811255501"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nama": None}, "nama"),
        ({"nik": None}, "nik"),
        ({"no_hp": None}, "no_hp"),
        ({"nama": ""}, "nama"),
        ({"nama": "   "}, "nama"),
        ({"nama": "x" * 101}, "nama"),
        ({"nama": 7}, "nama"),
        ({"nik": "317123456789000"}, "nik"),
        ({"nik": "31712345678900011"}, "nik"),
        ({"nik": "3171-23456789000"}, "nik"),
        ({"nik": 3171234567890001}, "nik"),
        ({"nik": ""}, "nik"),
        ({"no_hp": "0711255501"}, "no_hp"),
        ({"no_hp": "08112"}, "no_hp"),
        ({"no_hp": ""}, "no_hp"),
        ({"no_hp": 811255501}, "no_hp"),
        ({"saldo": 100}, "saldo"),
    ],
)
async def test_daftar_validation_is_400_remark_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**DAFTAR_OK, **change}.items() if v is not None}
    response = await api.http.post("/daftar", json=body)
    assert field in remark_of(response)


async def test_daftar_missing_fields_and_null(api: Api) -> None:
    for key in DAFTAR_OK:
        body = {k: v for k, v in DAFTAR_OK.items() if k != key}
        assert key in remark_of(await api.http.post("/daftar", json=body))
        assert key in remark_of(await api.http.post("/daftar", json={**DAFTAR_OK, key: None}))


# -- bodies that are not what a JSON API expects ----------------------------------------------
@pytest.mark.parametrize("path", ["/daftar", "/tabung", "/tarik"])
async def test_bad_bodies_are_400_remark_never_422(api: Api, path: str) -> None:
    json_header = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b"{not json", json_header),
        (b"", json_header),
        (b"[]", json_header),
        (b'"text"', json_header),
        (b"null", json_header),
        (b"{}", json_header),
        (b'{"nominal": 5', json_header),
        (b"nominal=5", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]
    for content, headers in cases:
        response = await api.http.post(path, content=content, headers=headers)
        remark_of(response)


# -- /tabung, /tarik, /saldo -------------------------------------------------------------------
async def test_tabung_tarik_saldo(api: Api) -> None:
    no_rekening = await api.daftar()
    assert await api.tabung(no_rekening, 100000) == 100000
    assert await api.tabung(no_rekening, 5000) == 105000
    response = await api.http.post("/tarik", json={"no_rekening": no_rekening, "nominal": 30000})
    assert response.status_code == 200
    assert response.json() == {"saldo": 75000}
    assert await api.saldo(no_rekening) == 75000
    response = await api.http.post("/tarik", json={"no_rekening": no_rekening, "nominal": 75000})
    assert response.json() == {"saldo": 0}
    assert (await api.http.get(f"/saldo/{no_rekening}")).json() == {"saldo": 0}
    await api.invariants_hold()


async def test_no_rekening_as_json_integer(api: Api) -> None:
    no_rekening = await api.daftar()
    assert await api.tabung(int(no_rekening), 700) == 700
    response = await api.http.post("/tarik", json={"no_rekening": int(no_rekening), "nominal": 200})
    assert response.json() == {"saldo": 500}


async def test_accounts_are_separate(api: Api) -> None:
    first, second = await api.daftar(), await api.daftar()
    await api.tabung(first, 1000)
    await api.tabung(second, 20)
    assert (await api.saldo(first), await api.saldo(second)) == (1000, 20)


async def test_tarik_short_changes_nothing(api: Api) -> None:
    no_rekening = await api.daftar()
    await api.tabung(no_rekening, 70000)
    for nominal in (70001, MAX_AMOUNT):
        response = await api.http.post(
            "/tarik", json={"no_rekening": no_rekening, "nominal": nominal}
        )
        assert "saldo" in remark_of(response)
    assert await api.saldo(no_rekening) == 70000
    assert len(await api.mutasi(no_rekening)) == 1
    empty = await api.daftar()
    assert "saldo" in remark_of(
        await api.http.post("/tarik", json={"no_rekening": empty, "nominal": 1})
    )
    await api.invariants_hold()


@pytest.mark.parametrize(
    ("nominal", "accepted"),
    [(0, False), (-5, False), (100.5, False), ("100", False), (True, False), (False, False),
     (None, False), (MAX_AMOUNT + 1, False), ([100], False), (1, True), (MAX_AMOUNT, True)],
)  # fmt: skip
async def test_nominal_must_be_a_whole_positive_json_integer(
    api: Api, nominal: object, accepted: bool
) -> None:
    no_rekening = await api.daftar()
    await api.tabung(no_rekening, MAX_AMOUNT)
    for path in ("/tabung", "/tarik"):
        response = await api.http.post(path, json={"no_rekening": no_rekening, "nominal": nominal})
        if accepted:
            assert response.status_code == 200, response.text
        else:
            assert "nominal" in remark_of(response)
    if not accepted:
        assert await api.saldo(no_rekening) == MAX_AMOUNT
        response = await api.http.post("/tabung", json={"no_rekening": no_rekening})
        assert "nominal" in remark_of(response)


@pytest.mark.parametrize("path", ["/tabung", "/tarik"])
async def test_money_body_fields_are_checked(api: Api, path: str) -> None:
    no_rekening = await api.daftar()
    bad_bodies: list[dict[str, Any]] = [
        {"nominal": 5},
        {"no_rekening": None, "nominal": 5},
        {"no_rekening": True, "nominal": 5},
        {"no_rekening": float(no_rekening), "nominal": 5},
        {"no_rekening": [no_rekening], "nominal": 5},
        {"no_rekening": {"n": no_rekening}, "nominal": 5},
        {"no_rekening": no_rekening, "nominal": 5, "remarks": "x"},
    ]
    for body in bad_bodies:
        remark = remark_of(await api.http.post(path, json=body))
        assert "no_rekening" in remark or "remarks" in remark, remark
    assert await api.saldo(no_rekening) == 0


@pytest.mark.parametrize(
    "no_rekening", ["123", "0123456789", "12345678901", "12345abcde", " 1234567890", "", -1]
)
async def test_malformed_no_rekening_is_400(api: Api, no_rekening: str | int) -> None:
    for path in ("/tabung", "/tarik"):
        response = await api.http.post(path, json={"no_rekening": no_rekening, "nominal": 5})
        assert "no_rekening" in remark_of(response)


async def test_unknown_no_rekening_on_every_route(api: Api) -> None:
    real = await api.daftar()
    await api.tabung(real, 1000)
    for unknown in (unregistered_valid_number(), mistyped(real)):
        for path in ("/tabung", "/tarik"):
            for value in (unknown, int(unknown)):
                response = await api.http.post(path, json={"no_rekening": value, "nominal": 10})
                assert "no_rekening" in remark_of(response)
        for path in ("/saldo", "/mutasi"):
            assert "no_rekening" in remark_of(await api.http.get(f"{path}/{unknown}"))
    for garbage in ("abc", "0123456789", "1" * 40):
        for path in ("/saldo", "/mutasi"):
            assert "no_rekening" in remark_of(await api.http.get(f"{path}/{garbage}"))
    assert await api.saldo(real) == 1000
    assert len(await api.mutasi(real)) == 1
    await api.invariants_hold()


async def test_mistyped_numbers_are_unknown_even_when_they_belong_to_nobody_else(api: Api) -> None:
    real = await api.daftar()
    await api.tabung(real, 1000)
    typos = [
        real[:i] + d + real[i + 1 :]
        for i in range(10)
        for d in "0123456789"
        if d != real[i] and not (i == 0 and d == "0")
    ]
    swaps = [
        real[:i] + real[i + 1] + real[i] + real[i + 2 :]
        for i in range(9)
        if real[i] != real[i + 1] and not (i == 0 and real[1] == "0")
    ]
    for wrong in typos + swaps:
        remark = remark_of(await api.http.get(f"/saldo/{wrong}"))
        assert "no_rekening" in remark


# -- /mutasi -----------------------------------------------------------------------------------
async def test_mutasi_oldest_first_with_iso_waktu_and_codes(api: Api) -> None:
    no_rekening = await api.daftar()
    started = datetime.now(UTC)
    await api.tabung(no_rekening, 100)
    await api.http.post("/tarik", json={"no_rekening": no_rekening, "nominal": 40})
    await api.tabung(no_rekening, 5)
    await api.http.post("/tarik", json={"no_rekening": no_rekening, "nominal": 1000})  # refused
    items = await api.mutasi(no_rekening)
    assert [(i["kode_transaksi"], i["nominal"]) for i in items] == [
        ("C", 100),
        ("D", 40),
        ("C", 5),
    ]
    moments = []
    for item in items:
        assert set(item) == {"waktu", "kode_transaksi", "nominal"}
        assert item["waktu"].endswith("+07:00"), item["waktu"]  # Asia/Jakarta by default
        moment = datetime.fromisoformat(item["waktu"])
        assert moment.utcoffset() == timedelta(hours=7)
        assert started - timedelta(seconds=1) <= moment <= datetime.now(UTC)
        moments.append(moment)
    assert moments == sorted(moments)


async def test_mutasi_waktu_follows_the_display_timezone(database_url: str) -> None:
    async with AsyncClientContext(
        fast_settings(database_url, display_timezone="America/Sao_Paulo")
    ) as http:
        response = await http.post("/daftar", json=DAFTAR_OK)
        no_rekening = response.json()["no_rekening"]
        await http.post("/tabung", json={"no_rekening": no_rekening, "nominal": 10})
        waktu = (await http.get(f"/mutasi/{no_rekening}")).json()["mutasi"][0]["waktu"]
    assert waktu.endswith("-03:00"), waktu


# -- Idempotency-Key ---------------------------------------------------------------------------
async def test_idempotency_key_replays_and_moves_money_once(api: Api) -> None:
    no_rekening = await api.daftar()
    key = {"Idempotency-Key": "tabung-1"}
    body = {"no_rekening": no_rekening, "nominal": 500}
    first = await api.http.post("/tabung", json=body, headers=key)
    assert first.json() == {"saldo": 500}
    await api.tabung(no_rekening, 1)  # another movement in between
    again = await api.http.post("/tabung", json=body, headers=key)
    assert (again.status_code, again.json()) == (200, {"saldo": 500})
    as_int = await api.http.post(
        "/tabung", json={"no_rekening": int(no_rekening), "nominal": 500}, headers=key
    )
    assert as_int.json() == {"saldo": 500}  # the same request, spelled differently
    assert await api.saldo(no_rekening) == 501

    tarik_key = {"Idempotency-Key": "tarik-1"}
    tarik_body = {"no_rekening": no_rekening, "nominal": 200}
    for _ in range(3):
        response = await api.http.post("/tarik", json=tarik_body, headers=tarik_key)
        assert response.json() == {"saldo": 301}
    assert await api.saldo(no_rekening) == 301
    assert len(await api.mutasi(no_rekening)) == 3
    await api.invariants_hold()


async def test_concurrent_requests_with_one_key_move_money_once(api: Api) -> None:
    no_rekening = await api.daftar()
    body = {"no_rekening": no_rekening, "nominal": 500}
    responses = await asyncio.gather(
        *(
            api.http.post("/tabung", json=body, headers={"Idempotency-Key": "storm"})
            for _ in range(8)
        )
    )
    succeeded = [r for r in responses if r.status_code == 200]
    assert succeeded
    assert all(r.json() == {"saldo": 500} for r in succeeded)
    for refused in (r for r in responses if r.status_code != 200):
        assert "Idempotency-Key" in remark_of(refused)  # still in flight: retry later
    assert await api.saldo(no_rekening) == 500
    await api.invariants_hold()


async def test_idempotency_key_reused_with_another_body_is_400(api: Api) -> None:
    no_rekening = await api.daftar()
    key = {"Idempotency-Key": "k-1"}
    await api.http.post("/tabung", json={"no_rekening": no_rekening, "nominal": 500}, headers=key)
    other = await api.http.post(
        "/tabung", json={"no_rekening": no_rekening, "nominal": 501}, headers=key
    )
    assert "Idempotency-Key" in remark_of(other)
    other_route = await api.http.post(
        "/tarik", json={"no_rekening": no_rekening, "nominal": 500}, headers=key
    )
    assert "Idempotency-Key" in remark_of(other_route)
    assert await api.saldo(no_rekening) == 500


async def test_idempotency_keys_belong_to_the_no_rekening(api: Api) -> None:
    first, second = await api.daftar(), await api.daftar()
    key = {"Idempotency-Key": "same-key"}
    await api.http.post("/tabung", json={"no_rekening": first, "nominal": 10}, headers=key)
    response = await api.http.post(
        "/tabung", json={"no_rekening": second, "nominal": 20}, headers=key
    )
    assert response.json() == {"saldo": 20}


async def test_a_refused_tarik_replays_its_refusal(api: Api) -> None:
    no_rekening = await api.daftar()
    key = {"Idempotency-Key": "short"}
    body = {"no_rekening": no_rekening, "nominal": 100}
    first = await api.http.post("/tarik", json=body, headers=key)
    remark = remark_of(first)
    await api.tabung(no_rekening, 1000)
    again = await api.http.post("/tarik", json=body, headers=key)
    assert remark_of(again) == remark  # the first answer, even though saldo is now enough
    assert await api.saldo(no_rekening) == 1000


@pytest.mark.parametrize("value", ["", "x" * 256])
async def test_a_bad_idempotency_key_is_400(api: Api, value: str) -> None:
    no_rekening = await api.daftar()
    response = await api.http.post(
        "/tabung",
        json={"no_rekening": no_rekening, "nominal": 10},
        headers={"Idempotency-Key": value},
    )
    assert "Idempotency-Key" in remark_of(response)
    assert await api.saldo(no_rekening) == 0


# -- documentation -----------------------------------------------------------------------------
async def test_openapi_documents_the_savings_api(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    routes = {
        ("/daftar", "post"),
        ("/tabung", "post"),
        ("/tarik", "post"),
        ("/saldo/{no_rekening}", "get"),
        ("/mutasi/{no_rekening}", "get"),
    }
    for path, method in routes:
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["Tabungan"]
        assert "400" in operation["responses"]
        assert "422" not in operation["responses"]
    assert "Tabungan" in {tag["name"] for tag in spec["tags"]}
    schemas = spec["components"]["schemas"]
    assert schemas["DaftarRequest"]["examples"]
    assert schemas["MoneyRequest"]["examples"]
    assert (await api.http.get("/docs")).status_code == 200
