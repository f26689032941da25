"""One account's postings past a cursor, in sequence order, read off the account index.

PostgreSQL may plan ``account_id = :a AND id < :c ORDER BY id DESC LIMIT n`` as a backward
scan of the primary key that filters on the account: quick while the account's entries are
among the newest, but to reach an older one it reads every later posting of every account
(about 20 ms a page with 100,000 postings in between, and a batch of twelve such pages over
100 ms; docs/read-path.md). Equality on ``account_id`` makes the ``account_id`` sort key
redundant, so ordering by both does not help. Written as a range of ``(account_id, id)``
with no equality, ordered by both columns, only ``ix_postings_account_id_id`` gives that
order, so every plan reads the page off it. A whole history (no limit) keeps the plain
form: PostgreSQL then reads the account's entries by a bitmap of that index and sorts them,
which served the full list of 10,000 entries faster (129 against 107 lists a second).
SQLite plans the plain form on the index (tests/contract/test_history_reads.py) and keeps
it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, and_, literal, tuple_
from sqlalchemy.sql.elements import ColumnElement

from dompet.storage.sql.tables import postings

ABOVE_EVERY_ID = 2**63 - 1
BELOW_EVERY_ID = -(2**63)
"""BIGINT's largest and smallest values: no posting has either id."""


def account_slice(
    engine_name: str,
    account_id: ColumnElement[Any],
    cursor: ColumnElement[Any] | None = None,
    *,
    oldest_first: bool = False,
    limited: bool = True,
) -> tuple[ColumnElement[bool], tuple[ColumnElement[Any], ...]]:
    """``(where, order_by)``: ``account_id``'s postings below ``cursor`` newest first (or
    above it, oldest first); all of them when there is no cursor. ``limited``: the query
    reads only the first few of them."""
    account, sequence = postings.c.account_id, postings.c.id
    if engine_name == "sqlite" or not limited:
        where = account == account_id
        if cursor is not None:
            where = and_(where, sequence > cursor if oldest_first else sequence < cursor)
        return where, (sequence.asc() if oldest_first else sequence.desc(),)
    if cursor is None:
        cursor = literal(BELOW_EVERY_ID if oldest_first else ABOVE_EVERY_ID, BigInteger)
    if oldest_first:
        past = and_(account <= account_id, tuple_(account, sequence) > tuple_(account_id, cursor))
        return past, (account.asc(), sequence.asc())
    below = and_(account >= account_id, tuple_(account, sequence) < tuple_(account_id, cursor))
    return below, (account.desc(), sequence.desc())
