"""The verified-access-token cache never outlives the token (expiry checked on every use)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dompet.domain.errors import Unauthenticated
from dompet.domain.ids import new_id
from dompet.security.tokens import JwtTokens

SECRET = "unit-test-secret-0123456789abcdef"


def test_a_cached_access_token_still_expires() -> None:
    tokens = JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7))
    user = new_id()
    now = datetime.now(UTC)
    access = tokens.issue(user, now).access_token
    assert tokens.access_subject(access, now) == user
    assert tokens.access_subject(access, now + timedelta(minutes=14)) == user  # cached
    with pytest.raises(Unauthenticated):
        tokens.access_subject(access, now + timedelta(minutes=15, seconds=1))


def test_a_forged_token_is_refused_even_after_a_good_one_was_cached() -> None:
    tokens = JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7))
    other = JwtTokens("another-secret-0123456789abcdef!", timedelta(minutes=15), timedelta(days=7))
    now = datetime.now(UTC)
    good = tokens.issue(new_id(), now).access_token
    tokens.access_subject(good, now)
    with pytest.raises(Unauthenticated):
        tokens.access_subject(other.issue(new_id(), now).access_token, now)
    with pytest.raises(Unauthenticated):
        tokens.access_subject(good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), now)
