"""Savings ("Tabungan") customers, identified by their account number (no_rekening)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    nama: str
    nik: str
    no_hp: str
    no_rekening: str
    created_at: datetime
