"""The SQL engines' settings come from config.Settings (read at the composition roots)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dompet.config import Settings
from dompet.container import sql_settings
from dompet.storage.sql.engine import SqlSettings


def test_the_engine_knobs_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sql_settings(Settings()) == SqlSettings()
    monkeypatch.setenv("SQLITE_SYNCHRONOUS", "normal")
    monkeypatch.setenv("SQLITE_WRITER_LOCK", "off")
    monkeypatch.setenv("PG_POOL_SIZE", "7")
    assert sql_settings(Settings()) == SqlSettings(
        sqlite_synchronous="NORMAL", sqlite_writer_lock=False, pg_pool_size=7
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("SQLITE_SYNCHRONOUS", "OFF"), ("SQLITE_WRITER_LOCK", "maybe"), ("PG_POOL_SIZE", "0")],
)
def test_a_bad_engine_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_sql_settings_refuse_what_the_engines_cannot_take() -> None:
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS"):
        SqlSettings(sqlite_synchronous="OFF")
    with pytest.raises(ValueError, match="PG_POOL_SIZE"):
        SqlSettings(pg_pool_size=0)
