"""example_data/ loads into every engine, the seed's user sees the seed's transactions, and
dump -> load -> dump loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dompet.dataio.folder import BadDataFolder, DatabaseNotEmpty, dump, load, read_manifest
from dompet.domain.invariants import check
from dompet.storage.port import LedgerStore
from tests.conftest import AsyncClientContext, fast_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "example_data"


async def test_the_seeds_user_logs_in_and_sees_the_seeds_three_transactions(
    store: LedgerStore, database_url: str
) -> None:
    report = await load(store, EXAMPLE)
    assert report.ok, report.violations
    async with AsyncClientContext(fast_settings(database_url)) as http:
        login = await http.post("/login", json={"phone_number": "0811255501", "pin": "123456"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['result']['access_token']}"}
        history = (await http.get("/transactions", headers=auth)).json()["result"]
        summary = [
            (e["transaction_type"], e["amount"], e["remarks"], e["status"], e["balance_after"])
            for e in history
        ]
        assert summary == [
            ("DEBIT", 30000, "Hadiah Ultah", "SUCCESS", 370000),
            ("DEBIT", 100000, "Pulsa Telkomsel 100k", "SUCCESS", 400000),
            ("CREDIT", 500000, "", "SUCCESS", 500000),
        ]
        assert "transfer_id" in history[0]
        assert "top_up_id" in history[2]
        profile = await http.put("/profile", headers=auth, json={"last_name": "Saputro"})
        assert profile.json()["result"]["first_name"] == "Guntur"

        # New money moves after a load (ids and sequences continue above the loaded ones).
        topup = await http.post("/topup", headers=auth, json={"amount": 1000})
        assert topup.json()["result"]["balance_after"] == 371000
        tom = await http.post("/login", json={"phone_number": "0811255502", "pin": "654321"})
        assert tom.status_code == 200

        # A savings customer of the example data, as docs/example-data.md lists her.
        assert (await http.get("/saldo/9339376447")).json() == {"saldo": 2150000}
        mutasi = (await http.get("/mutasi/9339376447")).json()["mutasi"]
        assert [(m["kode_transaksi"], m["nominal"]) for m in mutasi] == [
            ("C", 2000000),
            ("D", 350000),
            ("C", 500000),
        ]


async def test_dump_then_load_round_trips_without_loss(store: LedgerStore, tmp_path: Path) -> None:
    await load(store, EXAMPLE)
    manifest = await dump(store, tmp_path / "dumped")
    assert manifest == read_manifest(EXAMPLE)
    for name in ("manifest.json", *(f"{k}.jsonl" for k in manifest.counts)):
        assert (tmp_path / "dumped" / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


async def test_a_non_empty_database_is_refused_unless_forced(store: LedgerStore) -> None:
    await load(store, EXAMPLE)
    with pytest.raises(DatabaseNotEmpty):
        await load(store, EXAMPLE)
    with pytest.raises(ValueError, match="already exists"):
        await load(store, EXAMPLE, force=True)
    assert check(await store.snapshot()).ok


async def test_a_tampered_folder_is_refused_before_anything_is_written(
    store: LedgerStore, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for source in EXAMPLE.iterdir():
        (copy / source.name).write_bytes(source.read_bytes())
    users = (copy / "users.jsonl").read_text().replace("Guntur", "Gunter")
    (copy / "users.jsonl").write_text(users)
    with pytest.raises(BadDataFolder, match="checksum"):
        await load(store, copy)
    assert await store.is_empty()


def test_the_example_data_holds_the_seeds_story() -> None:
    users = [json.loads(line) for line in (EXAMPLE / "users.jsonl").read_text().splitlines()]
    names = {(u["first_name"], u["last_name"], u["phone_number"]) for u in users}
    assert {("Guntur", "Saputro", "0811255501"), ("Tom", "Araya", "0811255502")} <= names
    assert all(u["pin_hash"].startswith("$argon2id$") for u in users)
    customers = (EXAMPLE / "customers.jsonl").read_text().splitlines()
    assert len(customers) >= 3
