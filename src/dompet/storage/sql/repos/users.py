"""People who sign in: wallet users (with their wallet account) and the dashboard's operators.
(Their sessions: ``sessions.py``; the throttles on their attempts: ``throttles.py``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dompet.domain.errors import OperatorTaken, PhoneTaken
from dompet.domain.ledger import AccountKind, wallet_account
from dompet.domain.operators import Operator
from dompet.domain.sessions import operator_subject
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.repos.accounts import open_account
from dompet.storage.sql.repos.sessions import end_sessions
from dompet.storage.sql.tables import operators, time_columns, users

GET_USER = Statement(
    "SELECT id, first_name, last_name, phone_number, address, created_at, updated_at"
    " FROM users WHERE id = $1::text",
    time_columns(users),
)
"""A hot read: every transfer looks its target up."""


class Users:
    def __init__(self, access: ConnectionAccess) -> None:
        self._access = access

    # -- wallet users ------------------------------------------------------------------------
    async def add_user(self, user: User, pin_hash: str) -> None:
        try:
            async with self._access.write() as conn:
                await conn.execute(insert(users).values(user_row(user, pin_hash)))
                await open_account(
                    conn, wallet_account(user.id), AccountKind.WALLET, user.created_at
                )
        except IntegrityError as exc:
            raise PhoneTaken() from exc

    async def find_credentials(self, phone_number: str) -> Credentials | None:
        async with self._access.read() as conn:
            row = (
                await conn.execute(
                    select(users.c.id, users.c.pin_hash).where(users.c.phone_number == phone_number)
                )
            ).first()
        return Credentials(user_id=row.id, pin_hash=row.pin_hash) if row else None

    async def get_user(self, user_id: str) -> User | None:
        row = await self._access.fetch_row(GET_USER, user_id)
        return user_of(row) if row else None

    async def update_profile(
        self, user_id: str, changes: ProfileChanges, now: datetime
    ) -> User | None:
        async with self._access.write() as conn:
            row = (
                await conn.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .values(**changes.as_dict(), updated_at=now)
                    .returning(*users.c)
                )
            ).first()
        return user_of(row) if row else None

    # -- dashboard operators -----------------------------------------------------------------
    async def add_operator(self, operator: Operator) -> None:
        try:
            async with self._access.write() as conn:
                await conn.execute(
                    insert(operators).values(
                        username=operator.username,
                        password_hash=operator.password_hash,
                        created_at=operator.created_at,
                    )
                )
        except IntegrityError as exc:
            raise OperatorTaken(operator.username) from exc

    async def find_operator(self, username: str) -> Operator | None:
        async with self._access.read() as conn:
            row = (
                await conn.execute(select(operators).where(operators.c.username == username))
            ).first()
        if row is None:
            return None
        return Operator(row.username, row.password_hash, row.created_at)

    async def remove_operator(self, username: str, now: datetime) -> bool:
        """Delete the operator and end every session of theirs, in one transaction."""
        async with self._access.write() as conn:
            removed = await conn.execute(delete(operators).where(operators.c.username == username))
            await end_sessions(conn, operator_subject(username), now)
        return bool(removed.rowcount == 1)


def user_row(user: User, pin_hash: str) -> dict[str, Any]:
    """A user's row (a new one, or an imported one)."""
    return {
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone_number": user.phone_number,
        "address": user.address,
        "pin_hash": pin_hash,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def user_of(row: Any) -> User:
    """A users row (SQLAlchemy's, or a hot read's) as a User."""
    return User(
        id=row.id,
        first_name=row.first_name,
        last_name=row.last_name,
        phone_number=row.phone_number,
        address=row.address,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
