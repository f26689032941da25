"""GET /metrics (Prometheus), and the structured request logs with their request id."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dompet.config import Settings
from tests.conftest import AsyncClientContext, fast_settings


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def register_and_login(http: httpx.AsyncClient, phone: str) -> tuple[str, dict[str, str]]:
    body = {"first_name": "Guntur", "phone_number": phone, "pin": "123456"}
    user = (await http.post("/register", json=body)).json()["result"]["user_id"]
    login = await http.post("/login", json={"phone_number": phone, "pin": "123456"})
    return user, {"Authorization": f"Bearer {login.json()['result']['access_token']}"}


async def test_metrics_count_requests_money_and_transfers(client: httpx.AsyncClient) -> None:
    first = await client.get("/metrics")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(first.text)}
    assert names
    assert all(name.startswith("dompet_") for name in names), names
    assert value(first.text, "dompet_settlement_queue_depth") == 0

    guntur, auth = await register_and_login(client, "0811255501")
    tom, _ = await register_and_login(client, "0811255502")
    await client.post("/topup", headers=auth, json={"amount": 500000})
    await client.post("/pay", headers=auth, json={"amount": 100000, "remarks": "Pulsa"})
    await client.post("/pay", headers=auth, json={"amount": 10**9, "remarks": "too much"})
    await client.post("/transfer", headers=auth, json={"target_user": tom, "amount": 30000})
    rek = (
        await client.post(
            "/daftar", json={"nama": "Siti", "nik": "3171234567890001", "no_hp": "081234567890"}
        )
    ).json()["no_rekening"]
    await client.post("/tabung", json={"no_rekening": rek, "nominal": 250000})
    await client.post("/tarik", json={"no_rekening": rek, "nominal": 50000})
    await client.get(f"/saldo/{rek}")
    await client.get("/saldo/1234567890")
    await client.get("/no/such/route")

    text = (await client.get("/metrics")).text
    count = "dompet_http_requests_total"
    assert value(text, count, method="POST", route="/topup", status="200") == 1
    assert value(text, count, method="POST", route="/pay", status="200") == 1
    assert value(text, count, method="POST", route="/pay", status="400") == 1
    assert value(text, count, method="GET", route="/saldo/{no_rekening}", status="200") == 1
    assert value(text, count, method="GET", route="/saldo/{no_rekening}", status="400") == 1
    assert value(text, count, method="GET", route="<unmatched>", status="404") == 1
    assert not any(rek in line for line in text.splitlines())  # route templates, not paths
    latency = "dompet_http_request_duration_seconds_count"
    assert value(text, latency, method="POST", route="/topup") == 1

    money = "dompet_money_moved_rupiah_total"
    assert value(text, money, kind="topup") == 500000
    assert value(text, money, kind="pay") == 100000
    assert value(text, money, kind="transfer") == 30000
    assert value(text, money, kind="tabung") == 250000
    assert value(text, money, kind="tarik") == 50000
    assert value(text, "dompet_money_movements_total", kind="pay") == 1

    statuses = {
        status: value(text, "dompet_transfers", status=status)
        for status in ("PENDING", "SUCCESS", "FAILED")
    }
    assert sum(statuses.values()) == 1
    assert statuses["FAILED"] == 0
    depth = value(text, "dompet_settlement_queue_depth")
    assert depth == statuses["PENDING"]
    assert value(text, "dompet_settlement_lag_seconds", quantile="1") >= 0
    assert guntur


async def test_each_app_has_its_own_registry(settings: Settings) -> None:
    async with AsyncClientContext(settings) as one, AsyncClientContext(settings) as two:
        await one.get("/healthz")
        text = (await two.get("/metrics")).text
        hits = "dompet_http_requests_total"
        assert value(text, hits, method="GET", route="/healthz", status="200") == 0


@pytest.fixture
def json_settings(database_url: str) -> Settings:
    return fast_settings(database_url, log_json=True, log_level="INFO")


async def test_logs_are_json_with_the_request_id_and_no_secrets(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncClientContext(json_settings) as http:
        given = await http.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
        assert given.headers["x-request-id"] == "req-abc.123"
        made = await http.get("/healthz", headers={"X-Request-ID": "bad id\n with spaces"})
        assert made.headers["x-request-id"] != "bad id\n with spaces"
        assert len(made.headers["x-request-id"]) == 32
        _, auth = await register_and_login(http, "0811255509")
        await http.post("/topup", headers=auth, json={"amount": 1000})
        import logging

        logging.getLogger("dompet.test").warning(
            "login with pin=123456 and Authorization: Bearer abc.def.ghi",
            extra={"pin": "654321", "refresh_token": "zzz", "user": {"password": "hunter2"}},
        )
        try:
            hashed = "$argon2id$v=19" + "$secret"
            raise RuntimeError(f"boom [SQL: INSERT]\n[parameters: ('0811255509', '{hashed}')]")
        except RuntimeError:
            logging.getLogger("dompet.test").exception("a database error")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "dompet.access"]
    assert any(line["request_id"] == "req-abc.123" for line in access)
    topup = next(line for line in access if line.get("route") == "/topup")
    assert topup["status"] == 200
    assert topup["method"] == "POST"
    assert len(topup["request_id"]) == 32
    secrets = ("123456", "654321", "abc.def.ghi", "zzz", "hunter2", "$argon2id$v=19$secret")
    for secret in (*secrets, auth["Authorization"]):
        assert secret not in err
    assert "[REDACTED]" in err
    assert "RuntimeError: boom" in err  # the traceback is kept, its bound values are not
