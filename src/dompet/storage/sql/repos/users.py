"""People who sign in: wallet users (with their wallet account), their login throttle and
used refresh tokens, and the dashboard's operators."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dompet.domain.errors import OperatorTaken, PhoneTaken
from dompet.domain.ledger import AccountKind, wallet_account
from dompet.domain.operators import Operator
from dompet.domain.users import Credentials, ProfileChanges, User
from dompet.storage.sql.access import ConnectionAccess, Statement
from dompet.storage.sql.repos.accounts import open_account
from dompet.storage.sql.tables import (
    login_throttle,
    operators,
    time_columns,
    used_refresh_tokens,
    users,
)

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

    # -- login throttling and refresh tokens -------------------------------------------------
    async def login_locked_until(self, phone_number: str) -> datetime | None:
        async with self._access.read() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(login_throttle.c.locked_until).where(
                        login_throttle.c.phone_number == phone_number
                    )
                )
            ).scalar_one_or_none()
        return value

    async def record_login_failure(
        self, phone_number: str, now: datetime, max_failures: int, lock_for: timedelta
    ) -> datetime | None:
        # While a lock is active nothing is counted: failures racing with the one that set the
        # lock neither extend it nor count towards the next one.
        locked = and_(
            login_throttle.c.locked_until.is_not(None), login_throttle.c.locked_until > now
        )
        async with self._access.write() as conn:
            upsert = self._access.upsert(login_throttle).values(
                phone_number=phone_number, failures=1, locked_until=None
            )
            row = (
                await conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[login_throttle.c.phone_number],
                        set_={
                            "failures": case(
                                (locked, login_throttle.c.failures),
                                else_=login_throttle.c.failures + 1,
                            )
                        },
                    ).returning(login_throttle.c.failures, login_throttle.c.locked_until)
                )
            ).one()
            if row.locked_until is not None and row.locked_until > now:
                return None
            if row.failures < max_failures:
                return None
            locked_until = now + lock_for
            await conn.execute(
                update(login_throttle)
                .where(login_throttle.c.phone_number == phone_number)
                .values(failures=0, locked_until=locked_until)
            )
            return locked_until

    async def clear_login_failures(self, phone_number: str) -> None:
        async with self._access.write() as conn:
            await conn.execute(
                delete(login_throttle).where(login_throttle.c.phone_number == phone_number)
            )

    async def consume_refresh_token(self, jti: str, user_id: str, expires_at: datetime) -> bool:
        try:
            async with self._access.write() as conn:
                await conn.execute(
                    insert(used_refresh_tokens).values(
                        jti=jti, user_id=user_id, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True

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
