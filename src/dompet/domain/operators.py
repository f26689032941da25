"""Operators: the people who may log into the dashboard (``dompet create-operator``; there is
no default one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from dompet.domain.errors import InvalidInput

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    password_hash: str
    """Argon2id."""
    created_at: datetime


def is_username(name: str) -> bool:
    """Whether ``name`` (already normalised) could be an operator's username at all."""
    return _USERNAME.match(name) is not None and name.isascii()


def normalise_username(username: str) -> str:
    """Lower-case, 3-64 of a-z 0-9 . _ - (starting with a letter or digit)."""
    cleaned = username.strip().lower()
    if not _USERNAME.match(cleaned):
        raise InvalidInput(
            "username", "username must be 3-64 characters of a-z, 0-9, '.', '_' or '-'"
        )
    return cleaned


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password", f"password must be at least {MIN_PASSWORD_LENGTH} characters"
        )
