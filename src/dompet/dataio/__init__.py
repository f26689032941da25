"""Example data: a portable folder format for a whole Dompet database (dump, load, build)."""
