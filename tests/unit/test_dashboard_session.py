"""Dashboard session cookies, CSRF tokens and the latency percentile (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dompet.dashboard.page import dashboard_page
from dompet.dashboard.session import SessionSigner, session_key
from dompet.services.monitoring import percentile

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
SID = "2f6b1f1e-6a7e-4b35-9d55-1d0e4c3b2a10"


def test_a_session_round_trips_until_it_expires() -> None:
    signer = SessionSigner(b"k" * 32, timedelta(hours=1))
    cookie = signer.issue("ops", SID, NOW)
    session = signer.read(cookie, NOW + timedelta(minutes=59))
    assert session is not None
    assert session.username == "ops"
    assert session.session_id == SID
    assert signer.read(cookie, NOW + timedelta(hours=1)) is None


def test_forged_or_foreign_cookies_are_refused() -> None:
    signer = SessionSigner(b"k" * 32, timedelta(hours=1))
    other = SessionSigner(b"x" * 32, timedelta(hours=1))
    cookie = signer.issue("ops", SID, NOW)
    payload, signature = cookie.split(".")
    assert other.read(cookie, NOW) is None
    assert signer.read(payload + "." + signature[::-1], NOW) is None
    assert signer.read("garbage", NOW) is None
    assert signer.read(None, NOW) is None
    tampered = signer.issue("root", SID, NOW).split(".")[0] + "." + signature
    assert signer.read(tampered, NOW) is None


def test_csrf_tokens_are_bound_to_the_session() -> None:
    signer = SessionSigner(b"k" * 32, timedelta(hours=1))
    first = signer.read(signer.issue("ops", SID, NOW), NOW)
    second = signer.read(signer.issue("ops", SID, NOW), NOW)
    assert first is not None
    assert second is not None
    token = signer.csrf_token(first)
    assert signer.csrf_ok(first, token)
    assert not signer.csrf_ok(second, token)
    assert not signer.csrf_ok(first, None)
    assert not signer.csrf_ok(first, "")


def test_the_session_key_is_never_the_jwt_secret_itself() -> None:
    assert session_key(None, "jwt-secret") != b"jwt-secret"
    assert session_key("explicit", "jwt-secret") == b"explicit"


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_embedded_summary_cannot_close_its_script_tag() -> None:
    html = dashboard_page(
        username="<b>ops</b>",
        csrf_token="t",
        summary_json='{"x": "</script><script>alert(1)</script>"}',
        refresh_ms=1000,
        saq_mounted=False,
    )
    assert "</script><script>alert(1)" not in html
    assert "<b>ops</b>" not in html
