"""History items rendered as JSON by the database: the page queries (``history/reads.py``).

A history page costs the API little besides these items: fetched as ten Python values per entry,
turned into an ``Entry``, presented as a dict and serialised, fifty entries took about 160 us of
CPU. Built by the database as one JSON text per entry, the same page takes about 90 us on SQLite
(``docs/read-path.md``). One statement per page; its rows are ``(sequence, item)``. Most items
are stored with their posting when it is written (``written.py``): a page reads those back and
builds the others (``rendered_page``); PostgreSQL's journal statement builds the stored ones
with the same expression (``postgresql_written_item``).

This is the SQL form of ``domain.history.HistoryItems``, the one definition of an item, for
where Python does not run. It gives the same JSON text as the presenter and orjson, byte for
byte (``tests/contract/test_rendered_history.py``; ``dompet reconcile`` holds every stored
item, PostgreSQL's included, to the Python definition): SQLite builds it with ``json_object``;
PostgreSQL, whose ``json_build_object`` writes ``"key" : value``, by concatenation with
``to_json`` quoting the text. The display time is the stored UTC time plus the layout's fixed
offset, cut to whole seconds; an entry dated outside ``DISPLAY_RANGE`` gets a NULL item, and
the store then declines the page (the presenter's path handles any date).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from dompet.domain.history import DISPLAY_RANGE, ItemField, ItemLayout
from dompet.domain.ledger import WALLET_PREFIX, EntryStatus, EntryType, JournalKind
from dompet.storage.sql.account_order import ABOVE_EVERY_ID, account_slice
from dompet.storage.sql.tables import Money, postings, transfers


def entries_from() -> Any:
    """Postings (each carries its journal's kind, reference and remarks: no journals join),
    and the transfer of a transfer's debit (for its status)."""
    return postings.outerjoin(
        transfers,
        and_(transfers.c.id == postings.c.reference, postings.c.kind == JournalKind.TRANSFER_OUT),
    )


def entry_status(transfer_status: ColumnElement[Any] = transfers.c.status) -> ColumnElement[Any]:
    """An entry's status: its transfer's for a transfer's debit, SUCCESS for every other.
    ``transfer_status``: the status of the transfer joined by :func:`entries_from`, unless
    given otherwise."""
    return func.coalesce(
        case((postings.c.kind == JournalKind.TRANSFER_OUT, transfer_status)),
        _text(EntryStatus.SUCCESS.value),
    )


class Sources(NamedTuple):
    """The SQL values an item is built from."""

    kind: ColumnElement[Any]
    reference: ColumnElement[Any]
    status: ColumnElement[Any]
    user_id: ColumnElement[Any]
    amount: ColumnElement[Any]
    remarks: ColumnElement[Any]
    balance_before: ColumnElement[Any]
    balance_after: ColumnElement[Any]
    created_at: ColumnElement[Any]


def _read_sources(user_id: ColumnElement[Any], status: ColumnElement[Any]) -> Sources:
    """A page's: the posting's columns, its ``status``, the reader's ``user_id``."""
    return Sources(
        kind=postings.c.kind,
        reference=postings.c.reference,
        status=status,
        user_id=user_id,
        amount=postings.c.amount,
        remarks=postings.c.remarks,
        balance_before=postings.c.balance_before,
        balance_after=postings.c.balance_after,
        created_at=postings.c.created_at,
    )


def _page(
    layout: ItemLayout,
    engine_name: str,
    account_id: ColumnElement[Any],
    user_id: ColumnElement[Any],
    before: ColumnElement[Any] | None,
    limit: ColumnElement[Any] | None,
) -> Any:
    """``(id, item)`` rows of ``account_id``, newest first, below ``before``, at most ``limit``.

    An entry whose item was rendered when written in this layout (:item_layout, its
    fingerprint) is read back as it is; any other is rendered here."""
    sources = _read_sources(user_id, _looked_up_status())
    stored = postings.c.item_layout == bindparam("item_layout", type_=BigInteger)
    live = _item(layout, engine_name, sources)
    where, newest_first = account_slice(engine_name, account_id, before, limited=limit is not None)
    query = (
        select(
            postings.c.id,
            case((stored, postings.c.item), (_dated(engine_name, sources), live)).label("item"),
        )
        .where(where)
        .order_by(*newest_first)
    )
    if limit is not None:
        query = query.limit(limit)
    return query


def _looked_up_status() -> ColumnElement[Any]:
    """:func:`entry_status` without the join: the transfer is looked up only for an entry
    rendered here that is a transfer's debit. Joined, PostgreSQL probed the transfers' index
    for every entry of a page, stored items included."""
    return entry_status(
        select(transfers.c.status).where(transfers.c.id == postings.c.reference).scalar_subquery()
    )


@functools.cache
def rendered_page(layout: ItemLayout, engine_name: str, before: bool, limited: bool) -> Any:
    """``(sequence, item)`` rows of an account, newest first (bound :account_id, :user_id,
    :item_layout, :before, :limit); built once per layout, engine and shape."""
    return _page(
        layout,
        engine_name,
        bindparam("account_id"),
        cast(bindparam("user_id"), Text),
        bindparam("before", type_=Money) if before else None,
        bindparam("limit", type_=Money) if limited else None,
    )


@functools.cache
def rendered_pages(layout: ItemLayout) -> Any:
    """PostgreSQL: many pages of one size in one statement (``batched_reads.py``).

    Bound :account_ids, :user_ids and :befores, arrays with one element per page (a NULL
    before: from the newest entry), :limit and :item_layout. One row per page, in no order:
    ``(page, body, rendered, size, last)`` -- the page's number (1 for the first element),
    its items joined by commas (NULL when it has none), how many of them have an item (fewer
    than ``size`` when one is dated outside DISPLAY_RANGE), how many entries it has, and the
    sequence of its oldest one.
    """
    wanted = (
        func.unnest(
            bindparam("account_ids", type_=ARRAY(Text)),
            bindparam("user_ids", type_=ARRAY(Text)),
            bindparam("befores", type_=ARRAY(BigInteger)),
        )
        .table_valued("account_id", "user_id", "before", with_ordinality="page")
        .render_derived(name="wanted")
    )
    page = _page(
        layout,
        "postgresql",
        wanted.c.account_id,
        wanted.c.user_id,
        func.coalesce(wanted.c.before, literal_column(str(ABOVE_EVERY_ID), Money)),
        bindparam("limit", type_=Money),
    ).lateral("page")
    newest_first = aggregate_order_by(_text(","), page.c.id.desc())
    return (
        select(
            wanted.c.page,
            func.string_agg(page.c.item, newest_first).label("body"),
            func.count(page.c.item).label("rendered"),
            func.count(page.c.id).label("size"),
            func.min(page.c.id).label("last"),
        )
        .select_from(wanted.outerjoin(page, true()))
        .group_by(wanted.c.page)
    )


def postgresql_written_item(
    layout: ItemLayout, dialect: Dialect, journal: Mapping[str, str]
) -> str:
    """PostgreSQL: the SQL of a new posting's item in the journal statement
    (``journal/postgresql.py``), or NULL where it is rendered when read (``written.py`` says
    which). It reads the row being inserted (``v.account_id``, ``v.amount``, ``v.after``)
    and the journal's parameters, ``journal`` by column (``$2::text`` for its kind ...).
    Compiled for ``dialect`` with its constants inline."""
    return _postgresql_written_item(layout, dialect, tuple(journal.items()))


@functools.cache
def _postgresql_written_item(
    layout: ItemLayout, dialect: Dialect, journal_items: tuple[tuple[str, str], ...]
) -> str:
    journal = dict(journal_items)
    account = literal_column("v.account_id", Text)
    amount = literal_column("v.amount", Money)
    after = literal_column("v.after", Money)
    kind = literal_column(journal["kind"], Text)
    sources = Sources(
        kind=kind,
        reference=literal_column(journal["reference"], Text),
        status=_text(EntryStatus.SUCCESS.value),
        user_id=func.substr(account, len(WALLET_PREFIX) + 1),
        amount=amount,
        remarks=literal_column(journal["remarks"], Text),
        balance_before=after - amount,
        balance_after=after,
        created_at=literal_column(journal["created_at"]),
    )
    renders = and_(
        after.is_not(None),
        func.left(account, len(WALLET_PREFIX)) == _text(WALLET_PREFIX),
        kind != _text(JournalKind.TRANSFER_OUT.value),
        _dated("postgresql", sources),
    )
    expression = case((renders, _item(layout, "postgresql", sources)))
    sql = str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    assert "%" not in sql  # the compiler doubles a percent sign for its paramstyle
    return sql


def _dated(engine_name: str, sources: Sources) -> ColumnElement[bool]:
    """Whether the entry is dated inside DISPLAY_RANGE (else the store renders no item)."""
    return and_(
        sources.created_at >= _timestamp(engine_name, 0),
        sources.created_at < _timestamp(engine_name, 1),
    )


def _values(
    layout: ItemLayout, engine_name: str, sources: Sources
) -> list[tuple[str, ColumnElement[Any]]]:
    """Each key after the reference, with its SQL value (before any JSON quoting)."""
    created_at = sources.created_at
    offset = layout.utc_offset_seconds
    display: ColumnElement[Any]
    if engine_name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; cut, then shift
        display = func.datetime(func.substr(created_at, 1, 19), _text(f"{offset:+d} seconds"))
    else:
        shifted = created_at + literal_column(f"INTERVAL '{offset} seconds'")
        display = func.to_char(shifted, _text("YYYY-MM-DD HH24:MI:SS"))
    amount = sources.amount
    values: dict[ItemField, ColumnElement[Any]] = {
        ItemField.STATUS: sources.status,
        ItemField.USER_ID: sources.user_id,
        ItemField.ENTRY_TYPE: case(
            (amount > 0, _text(EntryType.CREDIT.value)), else_=_text(EntryType.DEBIT.value)
        ),
        ItemField.AMOUNT: func.abs(amount),
        ItemField.REMARKS: sources.remarks,
        ItemField.BALANCE_BEFORE: sources.balance_before,
        ItemField.BALANCE_AFTER: sources.balance_after,
        ItemField.DISPLAY_TIME: display,
    }
    return [(key, values[field]) for field, key in layout.fields]


_NUMBERS = {ItemField.AMOUNT, ItemField.BALANCE_BEFORE, ItemField.BALANCE_AFTER}


def _reference_key(layout: ItemLayout, sources: Sources) -> ColumnElement[Any]:
    return case({kind.value: _text(key) for kind, key in layout.references}, value=sources.kind)


def _item(layout: ItemLayout, engine_name: str, sources: Sources) -> ColumnElement[Any]:
    if engine_name == "sqlite":
        return _sqlite_item(layout, sources)
    return _postgresql_item(layout, sources)


def _sqlite_item(layout: ItemLayout, sources: Sources) -> ColumnElement[Any]:
    arguments: list[ColumnElement[Any]] = [_reference_key(layout, sources), sources.reference]
    for key, value in _values(layout, "sqlite", sources):
        arguments += [_text(key), value]
    return func.json_object(*arguments)


def _postgresql_item(layout: ItemLayout, sources: Sources) -> ColumnElement[Any]:
    numbers = {key for field, key in layout.fields if field in _NUMBERS}
    parts: list[ColumnElement[Any]] = [
        _text('{"'),
        _reference_key(layout, sources),
        _text('":'),
        _quoted(sources.reference),
    ]
    for key, value in _values(layout, "postgresql", sources):
        json_value = (
            func.coalesce(cast(value, Text), _text("null")) if key in numbers else _quoted(value)
        )
        parts += [_text(f',"{key}":'), json_value]
    parts.append(_text("}"))
    return func.concat(*parts)


def _quoted(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON string (or null) of a text value, as PostgreSQL's ``to_json`` writes it."""
    return func.coalesce(cast(func.to_json(cast(value, Text)), Text), _text("null"))


def _text(value: str) -> ColumnElement[Any]:
    """A constant SQL string: only our own keys and formats, never input."""
    assert "'" not in value
    return literal_column(f"'{value}'", Text)


def _timestamp(engine_name: str, end: int) -> ColumnElement[Any]:
    """An end of DISPLAY_RANGE, as the engine stores naive UTC."""
    moment = DISPLAY_RANGE[end].replace(tzinfo=None)
    if engine_name == "sqlite":
        return _text(moment.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return literal_column(f"TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S}'")
