"""A thin test client for the e-wallet API: register, log in, and call routes as a user."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import httpx

_numbers = itertools.count(1)


def fresh_phone() -> str:
    return f"0813{next(_numbers):08d}"


@dataclass
class Wallet:
    http: httpx.AsyncClient
    user_id: str
    phone: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers={**self.auth, **headers})

    async def topup(self, amount: int) -> httpx.Response:
        return await self.post("/topup", {"amount": amount})

    async def pay(self, amount: int, remarks: str = "") -> httpx.Response:
        return await self.post("/pay", {"amount": amount, "remarks": remarks})

    async def transfer(self, target: str, amount: int, remarks: str = "") -> httpx.Response:
        return await self.post(
            "/transfer", {"target_user": target, "amount": amount, "remarks": remarks}
        )

    async def transactions(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get("/transactions", headers=self.auth, params=params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["result"]
        return result


async def register(
    http: httpx.AsyncClient, first_name: str = "Guntur", pin: str = "123456", **extra: str
) -> Wallet:
    phone = extra.pop("phone_number", fresh_phone())
    body = {
        "first_name": first_name,
        "last_name": "Saputro",
        "phone_number": phone,
        "address": "Jl. Kebon Sirih No. 1",
        "pin": pin,
        **extra,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 200, response.text
    user_id = response.json()["result"]["user_id"]
    login = await http.post("/login", json={"phone_number": phone, "pin": pin})
    assert login.status_code == 200, login.text
    tokens = login.json()["result"]
    return Wallet(http, user_id, phone, tokens["access_token"], tokens["refresh_token"])


async def wait_for_status(wallet: Wallet, transfer_id: str, status: str) -> dict[str, Any]:
    """Poll the sender's history until the transfer's DEBIT entry reads ``status``."""
    for _ in range(200):
        for item in await wallet.transactions():
            if (
                item.get("transfer_id") == transfer_id
                and item["transaction_type"] == "DEBIT"
                and item["status"] == status
            ):
                return item
        await asyncio.sleep(0.05)
    raise AssertionError(f"transfer {transfer_id} never became {status}")
