"""README.md documents every setting, and the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from dompet.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def env_var(name: str) -> str:
    field = Settings.model_fields[name]
    alias = field.validation_alias
    return (alias if isinstance(alias, str) else name).upper()


def configuration_table() -> dict[str, tuple[str, str]]:
    """env var -> (default cell, meaning cell)."""
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \| (.+?) \|$", section, re.MULTILINE)
    return {var: (default, meaning) for var, default, meaning in rows}


def configuration_rows() -> dict[str, str]:
    return {var: meaning for var, (_default, meaning) in configuration_table().items()}


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    rows = configuration_rows()
    missing = [env_var(name) for name in Settings.model_fields if env_var(name) not in rows]
    assert not missing, f"README.md's configuration table lacks: {missing}"
    assert all(meaning.strip() for meaning in rows.values())


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    known = {env_var(name) for name in Settings.model_fields}
    assert set(configuration_rows()) <= known


def test_quick_start_is_the_two_commands() -> None:
    text = README.read_text()
    quick = text[text.index("## Quick start") :]
    start = quick.index("```bash\n") + len("```bash\n")
    block = quick[start : quick.index("\n```", start)]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_the_documented_defaults_are_the_real_ones() -> None:
    table = configuration_table()
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, bool) or not isinstance(default, int | float | str):
            continue  # secrets, unset values and switches are described in words
        if env_var(name) in table:
            assert table[env_var(name)][0] == f"`{default}`", env_var(name)
