"""Generate the example data by driving the real services on a scratch SQLite database.

The seed's story (Guntur Saputro tops up 500000, pays "Pulsa Telkomsel 100k" and sends Tom
Araya 30000 "Hadiah Ultah") plus a few more users and savings customers with history, on a
clock that starts at 2021-04-01 08:00 Jakarta time and advances a few minutes per step.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import Type
from argon2.low_level import hash_secret

from dompet.config import Settings
from dompet.container import Container
from dompet.dataio.folder import Manifest, dump
from dompet.domain.records import AccountRecord, DataRecord, JournalRecord, UserRecord
from dompet.domain.savings import Customer, damm_digit
from dompet.domain.transfers import Transfer
from dompet.services.wallet import NewUserRequest
from dompet.storage import migrate, open_store

START = datetime(2021, 4, 1, 1, 0, tzinfo=UTC)

USERS = [
    NewUserRequest("Guntur", "Saputro", "0811255501", "Jl. Kebon Sirih No. 1", "123456"),
    NewUserRequest("Tom", "Araya", "0811255502", "Jl. Braga No. 7, Bandung", "654321"),
    NewUserRequest("Dewi", "Lestari", "081298765432", "Jl. Malioboro No. 12, Yogyakarta", "111222"),
    NewUserRequest("Budi", "Santoso", "085712345678", "Jl. Pemuda No. 45, Semarang", "333444"),
    NewUserRequest("Ayu", "", "087788990011", "", "555666"),
]
"""Every example user, with their PIN (documented in docs/example-data.md)."""

CUSTOMERS = [
    ("Siti Rahma", "3171234567890001", "081234567890"),
    ("Andi Wijaya", "3273010203040005", "081311122233"),
    ("Putu Ayu Wulandari", "5171015506900002", "081999887766"),
]


@dataclass
class SteppingClock:
    """A clock that moves ``step`` forward every time it is read."""

    now: datetime = START
    step: timedelta = timedelta(minutes=7)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


async def build(folder: Path) -> Manifest:
    """Write the example data into ``folder``; the same bytes every time (see canonical)."""
    with tempfile.TemporaryDirectory(prefix="dompet-example-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'story.db'}"
        await migrate(url)
        settings = Settings.model_validate(
            {"env": "development", "database_url": url, "DOMPET_WORKER": False}
        )
        container = await Container.build(settings, clock=SteppingClock())
        try:
            await _story(container)
            records = [record async for record in container.store.export_records()]
        finally:
            await container.aclose()
        final_url = f"sqlite:///{Path(scratch) / 'example.db'}"
        await migrate(final_url)
        store = await open_store(final_url)
        try:
            await store.import_records(canonical(records))
            return await dump(store, folder)
        finally:
            await store.close()


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(("dompet-example", *parts)).encode()).digest()


def _uuid7(at: datetime, *parts: str) -> str:
    """A UUIDv7 for time ``at`` whose random bits are derived from ``parts``."""
    ms = int(at.timestamp() * 1000)
    rand = int.from_bytes(_digest(*parts)[:10], "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def _account_number(*parts: str) -> str:
    seed = int.from_bytes(_digest(*parts)[:8], "big")
    body = str(1 + seed % 9) + f"{(seed // 9) % 10**8:08d}"
    return body + str(damm_digit(body))


def _pin_hash(phone: str, pin: str) -> str:
    """Argon2id with the default parameters and a salt derived from the phone number."""
    return hash_secret(
        pin.encode(),
        _digest("salt", phone)[:16],
        time_cost=3,
        memory_cost=65536,
        parallelism=4,
        hash_len=32,
        type=Type.ID,
    ).decode()


def canonical(records: list[DataRecord]) -> list[DataRecord]:
    """The same records with ids, account numbers and PIN salts derived from their content
    (times, phone numbers, nik, posting sequences), so building twice gives the same bytes."""
    pins = {u.phone_number: u.pin for u in USERS}
    ids: dict[str, str] = {}
    for record in records:
        if isinstance(record, UserRecord):
            ids[record.user.id] = _uuid7(record.user.created_at, "user", record.user.phone_number)
        elif isinstance(record, Customer):
            ids[record.id] = _uuid7(record.created_at, "customer", record.nik)
            ids[record.no_rekening] = _account_number("no_rekening", record.nik)
    for record in records:
        if isinstance(record, Transfer):
            ids[record.id] = _uuid7(record.created_at, "transfer", record.remarks)
    for record in records:
        if isinstance(record, JournalRecord):
            first = str(min(leg.sequence for leg in record.postings))
            ids[record.id] = _uuid7(record.created_at, "journal", first)

    def account(account_id: str) -> str:
        kind, _, key = account_id.partition(":")
        return f"{kind}:{ids.get(key, key)}"

    out: list[DataRecord] = []
    for record in records:
        if isinstance(record, AccountRecord):
            out.append(replace(record, id=account(record.id)))
        elif isinstance(record, UserRecord):
            user = replace(record.user, id=ids[record.user.id])
            pin_hash = _pin_hash(user.phone_number, pins[user.phone_number])
            out.append(UserRecord(user=user, pin_hash=pin_hash))
        elif isinstance(record, Customer):
            out.append(replace(record, id=ids[record.id], no_rekening=ids[record.no_rekening]))
        elif isinstance(record, JournalRecord):
            legs = tuple(
                replace(leg, account_id=account(leg.account_id)) for leg in record.postings
            )
            out.append(
                replace(record, id=ids[record.id], reference=ids[record.reference], postings=legs)
            )
        else:
            out.append(
                replace(
                    record,
                    id=ids[record.id],
                    sender_id=ids[record.sender_id],
                    target_id=ids[record.target_id],
                )
            )
    return out


async def _story(app: Container) -> None:
    wallet, savings, settlement = app.wallet, app.savings, app.settlement
    guntur, tom, dewi, budi, ayu = [(await wallet.register(u)).id for u in USERS]

    # The seed's three transactions, and nothing else of Guntur's.
    await wallet.top_up(guntur, 500000)
    await wallet.pay(guntur, 100000, "Pulsa Telkomsel 100k")
    hadiah = await wallet.transfer(guntur, tom, 30000, "Hadiah Ultah")
    await settlement.settle(hadiah.reference)

    await wallet.top_up(tom, 250000)
    await wallet.pay(tom, 75000, "Token PLN 75k")
    await wallet.top_up(dewi, 1000000)
    sent = await wallet.transfer(dewi, budi, 150000, "Bayar kos April")
    await settlement.settle(sent.reference)
    await wallet.pay(dewi, 49000, "GoFood Nasi Padang")
    sent = await wallet.transfer(budi, tom, 50000, "Patungan futsal")
    await settlement.settle(sent.reference)
    await wallet.top_up(ayu, 100000)
    await wallet.pay(budi, 20000, "Parkir Mall")
    sent = await wallet.transfer(tom, dewi, 25000, "Makan siang")
    await settlement.settle(sent.reference)

    opened = [await savings.daftar(*c) for c in CUSTOMERS]
    siti, andi, putu = (c.no_rekening for c in opened)
    await savings.tabung(siti, 2000000)
    await savings.tarik(siti, 350000)
    await savings.tabung(siti, 500000)
    await savings.tabung(andi, 750000)
    await savings.tarik(andi, 100000)
    await savings.tabung(putu, 5000000)
    await savings.tarik(putu, 1250000)
    await savings.tarik(putu, 250000)
