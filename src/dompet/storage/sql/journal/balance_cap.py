"""The balance cap on SQL: the CHECK ``ck_accounts_balance_cap`` (migration 0007) refuses any
customer balance above ``BALANCE_CAP``; a journal it refused is the caller's 400, not a 500
(``SqlStore`` wraps the journal writer's three methods in :func:`refusing_over_cap`).

The CHECK is evaluated by the very UPDATE that changes the balance, so nothing over the cap
can ever be stored, under any concurrency; the refused statement (and with it its journal:
one statement, or one transaction or SAVEPOINT) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from dompet.domain.errors import BalanceLimitExceeded

CAP_CHECK = "ck_accounts_balance_cap"


@contextmanager
def refusing_over_cap() -> Iterator[None]:
    """Turn the cap's CHECK violation into :class:`BalanceLimitExceeded`."""
    try:
        yield
    except IntegrityError as exc:
        if CAP_CHECK in str(exc.orig):
            raise BalanceLimitExceeded() from exc
        raise
