"""WalletPresenter.when: the display format, exactly what strftime gives, in any time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dompet.api.presenters import DISPLAY_FORMAT, WalletPresenter

ZONES = ["Asia/Jakarta", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "UTC"]


@settings(max_examples=2000, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
    st.sampled_from(ZONES),
)
def test_when_is_strftime(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    assert WalletPresenter(tz).when(moment) == moment.astimezone(tz).strftime(DISPLAY_FORMAT)


def test_when_across_a_daylight_saving_change() -> None:
    tz = ZoneInfo("America/New_York")
    presenter = WalletPresenter(tz)
    start = datetime(2021, 3, 14, 6, 59, 58, 999999, tzinfo=UTC)  # 01:59:58 EST
    shown = [presenter.when(start + timedelta(seconds=s)) for s in range(3)]
    assert shown == ["2021-03-14 01:59:58", "2021-03-14 01:59:59", "2021-03-14 03:00:00"]


def test_when_keeps_strftime_years_below_1000() -> None:
    moment = datetime(999, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert WalletPresenter(ZoneInfo("UTC")).when(moment) == moment.strftime(DISPLAY_FORMAT)
