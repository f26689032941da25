# ruff: noqa: S608 - the test's own constant rows are quoted into its raw SQL
"""Postings carry their journal's kind, reference and remarks (migration 0004), on SQL engines.

A database at revision 0003 with journals and postings written raw is upgraded to head: every
posting gets its journal's values. Downgrade drops the columns again. A posting row whose copy
was tampered with is reported by ``dompet reconcile``.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from dompet.storage import migrate
from dompet.storage.sql.migrate import run_alembic
from tests.reliability.test_reconcile import busy_ledger, reconcile, run_sql
from tests.support.sql import sql_connection


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The SQL engines only (overrides conftest's, which includes MongoDB)."""
    name: str = request.param
    return name


async def _query(url: str, sql: str) -> list[Any]:
    async with sql_connection(url) as conn:
        return list((await conn.execute(text(sql))).all())


JOURNALS = [  # id, kind, reference, remarks
    ("j-topup", "topup", "j-topup", ""),
    ("j-pay", "payment", "j-pay", "kopi 'susu' \"gula\" aren — 50%"),
    ("j-out", "transfer_out", "t-1", "sewa"),
    ("j-settle", "transfer_settle", "t-1", "sewa"),
]
POSTINGS = [  # journal, account, amount, balance_before, balance_after
    ("j-topup", "wallet:a", 10_000, 0, 10_000),
    ("j-topup", "system:topup", -10_000, None, None),
    ("j-pay", "wallet:a", -1_000, 10_000, 9_000),
    ("j-pay", "system:payments", 1_000, None, None),
    ("j-out", "wallet:a", -2_500, 9_000, 6_500),
    ("j-out", "system:transit", 2_500, None, None),
    ("j-settle", "system:transit", -2_500, None, None),
    ("j-settle", "wallet:b", 2_500, 0, 2_500),
]


def _raw_ledger() -> list[str]:
    """The statements writing JOURNALS and POSTINGS as a 0003 database holds them."""

    def quoted(value: object) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    accounts = sorted({a for _, a, *_ in POSTINGS if a.startswith("wallet:")})  # 0001: systems
    return [
        "INSERT INTO accounts (id, kind, balance, blocked, created_at) VALUES "
        + ", ".join(
            f"({quoted(a)}, {quoted(a.split(':')[0])}, 0, false, CURRENT_TIMESTAMP)"
            for a in accounts
        ),
        "INSERT INTO journals (id, kind, reference, remarks, created_at) VALUES "
        + ", ".join(f"({', '.join(map(quoted, j))}, CURRENT_TIMESTAMP)" for j in JOURNALS),
        "INSERT INTO postings (journal_id, account_id, amount, balance_before, balance_after,"
        " created_at) VALUES "
        + ", ".join(f"({', '.join(map(quoted, p))}, CURRENT_TIMESTAMP)" for p in POSTINGS),
    ]


async def test_0004_copies_each_journal_onto_its_postings(raw_database_url: str) -> None:
    url = raw_database_url
    await run_alembic(url, "upgrade", "0003")
    await run_sql(url, *_raw_ledger())

    assert (await migrate(url))[:1] == ["0004"]  # then any later revision

    rows = await _query(
        url,
        "SELECT p.journal_id, p.kind, p.reference, p.remarks, j.kind, j.reference, j.remarks"
        " FROM postings p JOIN journals j ON j.id = p.journal_id ORDER BY p.id",
    )
    assert [r[0] for r in rows] == [p[0] for p in POSTINGS]
    by_id = {j[0]: j[1:] for j in JOURNALS}
    for journal_id, *copied in rows:
        assert tuple(copied[:3]) == by_id[journal_id] == tuple(copied[3:])


async def test_0004_leaves_no_default_on_postgresql(raw_database_url: str) -> None:
    """A writer that forgets the copies fails loudly on PostgreSQL (the defaults are dropped);
    SQLite keeps DEFAULT '' (dropping it would rebuild the table): reconcile reports those."""
    url = raw_database_url
    await run_alembic(url, "upgrade", "0003")
    await run_sql(url, *_raw_ledger())
    await migrate(url)
    forgetful = (
        "INSERT INTO postings (journal_id, account_id, amount, created_at)"
        " VALUES ('j-pay', 'wallet:b', 0, CURRENT_TIMESTAMP)"
    )
    if "sqlite" in url:
        await run_sql(url, forgetful)
        code, output = await reconcile(url)
        assert code == 1, output
        assert "remarks differ from its journal's" in output, output
        return
    with pytest.raises(IntegrityError, match="kind"):
        await run_sql(url, forgetful)


async def test_0004_downgrade_drops_the_copies_and_keeps_the_rows(raw_database_url: str) -> None:
    url = raw_database_url
    await run_alembic(url, "upgrade", "0003")
    await run_sql(url, *_raw_ledger())
    await migrate(url)

    await run_alembic(url, "downgrade", "0003")
    async with sql_connection(url) as conn:
        result = await conn.execute(text("SELECT * FROM postings ORDER BY id"))
        names, rows = list(result.keys()), result.all()
    assert not {"kind", "reference", "remarks"} & set(names)
    assert [(r.journal_id, r.account_id, int(r.amount)) for r in rows] == [p[:3] for p in POSTINGS]

    assert (await migrate(url))[:1] == ["0004"]  # and up again
    assert len(await _query(url, "SELECT 1 FROM postings WHERE kind = ''")) == 0


async def test_reconcile_reports_a_posting_whose_copy_differs(database_url: str) -> None:
    ids = await busy_ledger(database_url)
    code, output = await reconcile(database_url)
    assert code == 0, output
    await run_sql(
        database_url,
        "UPDATE postings SET remarks = 'teh' WHERE id ="
        " (SELECT MAX(id) FROM postings WHERE account_id = :alice)",
        **ids,
    )
    code, output = await reconcile(database_url)
    assert code == 1, output
    message = " ".join(output.split())
    assert "kind, reference or remarks differ from its journal's" in message, output
