"""Dompet: an e-wallet and savings (Tabungan) API over one double-entry ledger."""

__version__ = "0.1.0"
