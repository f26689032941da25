"""Fixtures of the reliability and security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dompet.storage import migrate
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext, SettableClock


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A fresh migrated SQLite database, for tests whose subject does not depend on the engine."""
    url = f"sqlite:///{tmp_path / 'dompet.db'}"
    await migrate(url)
    return url


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
async def app(database_url: str, clock: SettableClock) -> AsyncIterator[App]:
    """The real app on every engine, with a clock the test can move."""
    async with AppContext(fast_settings(database_url), clock) as running:
        yield running


@pytest.fixture
async def sqlite_app(sqlite_url: str, clock: SettableClock) -> AsyncIterator[App]:
    async with AppContext(fast_settings(sqlite_url), clock) as running:
        yield running
