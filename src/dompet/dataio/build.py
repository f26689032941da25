"""Generate the example data by driving the real services on a scratch SQLite database.

The seed's story (Guntur Saputro tops up 500000, pays "Pulsa Telkomsel 100k" and sends Tom
Araya 30000 "Hadiah Ultah") plus a few more users and savings customers with history, on a
clock that starts at 2021-04-01 08:00 Jakarta time and advances a few minutes per step.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dompet.config import Settings
from dompet.container import Container
from dompet.dataio.folder import Manifest, dump
from dompet.services.wallet import NewUserRequest
from dompet.storage import migrate

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
    """Write the example data into ``folder``."""
    with tempfile.TemporaryDirectory(prefix="dompet-example-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'example.db'}"
        await migrate(url)
        settings = Settings.model_validate(
            {"env": "development", "database_url": url, "DOMPET_WORKER": False}
        )
        clock = SteppingClock()
        container = await Container.build(settings, clock=clock)
        try:
            await _story(container)
            return await dump(container.store, folder)
        finally:
            await container.aclose()


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
