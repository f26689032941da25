"""Money is a whole number of Rupiah."""

from __future__ import annotations

from dompet.domain.errors import InvalidInput

MAX_AMOUNT = 10**12
"""The largest amount a single operation may move."""
BALANCE_CAP = 10**15
"""No customer balance may exceed this (a CHECK on SQL, a guard and validator on MongoDB):
far below the 64-bit limit, so no balance or sum of them can overflow."""


def check_amount(amount: int, field: str = "amount") -> int:
    """Return ``amount`` if it is a valid operation amount (an int, 1..10^12)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(field, f"{field} must be a whole number of Rupiah")
    if amount <= 0:
        raise InvalidInput(field, f"{field} must be greater than 0")
    if amount > MAX_AMOUNT:
        raise InvalidInput(field, f"{field} must be at most {MAX_AMOUNT}")
    return amount
