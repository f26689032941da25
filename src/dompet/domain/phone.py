"""Indonesian mobile numbers, stored in their local form (08...)."""

from __future__ import annotations

import re

from dompet.domain.errors import InvalidInput

_PHONE = re.compile(r"^(\+62|62|0)(8[0-9]{8,11})$")


def normalize_phone(raw: str, field: str = "phone_number") -> str:
    """``0811255501``, ``62811255501`` and ``+62811255501`` all become ``0811255501``."""
    match = _PHONE.fullmatch(raw.strip())
    if match is None:
        raise InvalidInput(field, f"{field} must be an Indonesian mobile number such as 0811255501")
    return "0" + match.group(2)
