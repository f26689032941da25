"""Savings ("Tabungan") customers, identified by their account number (no_rekening).

A no_rekening is 10 digits: a first digit 1-9 and 8 more random digits (9 random digits in all,
drawn from :mod:`secrets`, so numbers are neither sequential nor guessable), then one check
digit computed with the **Damm algorithm**. Damm's check digit catches every single-digit
substitution and every transposition of two adjacent digits (check digit included), needs no
weights or special symbols (unlike ISBN/mod 11, whose check "digit" can be ``X``) and, unlike
Luhn, does not miss ``09 <-> 90``. A mistyped number therefore fails the check and is treated as
unknown, without a database lookup.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from dompet.domain.errors import InvalidInput, UnknownAccountNumber
from dompet.domain.phone import normalize_phone

ACCOUNT_NUMBER_LENGTH = 10
NIK_LENGTH = 16
MAX_NAMA_LENGTH = 100

# The Damm operation table: a totally anti-symmetric quasigroup of order 10 with a zero diagonal
# (H. Michael Damm, 2004; the table published with the algorithm).
_DAMM: tuple[tuple[int, ...], ...] = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    nama: str
    nik: str
    no_hp: str
    no_rekening: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """A validated /daftar request: nama trimmed, nik checked, no_hp in its local form."""

    nama: str
    nik: str
    no_hp: str


def _is_ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def damm_digit(digits: str) -> int:
    """The Damm interim digit of a string of ASCII digits (0 means the check passes)."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][ord(char) - 48]
    return interim


def new_account_number() -> str:
    """A fresh random no_rekening: first digit 1-9, 8 more random digits, a Damm check digit."""
    body = str(1 + secrets.randbelow(9)) + "".join(str(secrets.randbelow(10)) for _ in range(8))
    return body + str(damm_digit(body))


def has_account_number_format(value: str) -> bool:
    """10 ASCII digits, not starting with 0 (the check digit is not looked at)."""
    return len(value) == ACCOUNT_NUMBER_LENGTH and _is_ascii_digits(value) and value[0] != "0"


def is_valid_account_number(value: str) -> bool:
    """The format holds and the Damm check digit matches."""
    return has_account_number_format(value) and damm_digit(value) == 0


def check_account_number(value: str) -> str:
    """Return ``value`` if it can be a no_rekening.

    A value that is not 10 digits (or starts with 0) is invalid input; a well-formed number whose
    check digit does not match is simply unknown (most likely a typo), like a number nobody holds.
    """
    if not has_account_number_format(value):
        raise InvalidInput("no_rekening", "no_rekening must be 10 digits, not starting with 0")
    if damm_digit(value) != 0:
        raise UnknownAccountNumber()
    return value


def check_new_customer(nama: str, nik: str, no_hp: str) -> NewCustomer:
    """Validate a /daftar request; raise InvalidInput naming the first field that is wrong."""
    cleaned = nama.strip()
    if not cleaned:
        raise InvalidInput("nama", "nama must not be empty")
    if len(cleaned) > MAX_NAMA_LENGTH:
        raise InvalidInput("nama", f"nama must be at most {MAX_NAMA_LENGTH} characters")
    if len(nik) != NIK_LENGTH or not _is_ascii_digits(nik):
        raise InvalidInput("nik", f"nik must be exactly {NIK_LENGTH} digits")
    return NewCustomer(nama=cleaned, nik=nik, no_hp=normalize_phone(no_hp, field="no_hp"))
