"""House rules every module under src/dompet keeps (the team's standards, COMMON.md):
small modules that say in their first lines what they hold, and settings read in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dompet"
MOST_LINES = 600


def _modules() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if "migrations/versions" not in p.as_posix()]


def test_no_module_is_longer_than_600_lines() -> None:
    """Migrations excepted: each is a dated record, not code people change."""
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MOST_LINES
    }
    assert long == {}


def test_every_module_says_what_it_holds() -> None:
    silent = [
        str(p.relative_to(SRC))
        for p in _modules()
        if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert silent == []


def test_only_config_reads_the_environment() -> None:
    """Settings are read at the composition roots (container, cli, serving) and passed down."""
    reads = re.compile(r"\bos\.environ\b|\bgetenv\(|\benviron\.get\(")
    readers = [
        str(p.relative_to(SRC))
        for p in _modules()
        if p.name != "config.py" and reads.search(p.read_text())
    ]
    assert readers == []
