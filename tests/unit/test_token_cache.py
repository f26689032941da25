"""Tokens name their session, and the verified-access-token cache never outlives the token
(expiry checked on every use)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from dompet.domain.errors import Unauthenticated
from dompet.domain.ids import new_id
from dompet.security.tokens import JwtTokens
from dompet.services.ports import AccessClaims

SECRET = "unit-test-secret-0123456789abcdef"


def test_a_cached_access_token_still_expires() -> None:
    tokens = JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7))
    user = new_id()
    now = datetime.now(UTC)
    session = new_id()
    access = tokens.issue(user, session, now).access_token
    assert tokens.access_claims(access, now) == AccessClaims(user, session)
    assert tokens.access_claims(access, now + timedelta(minutes=14)).user_id == user  # cached
    with pytest.raises(Unauthenticated):
        tokens.access_claims(access, now + timedelta(minutes=15, seconds=1))


def test_a_forged_token_is_refused_even_after_a_good_one_was_cached() -> None:
    tokens = JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7))
    other = JwtTokens("another-secret-0123456789abcdef!", timedelta(minutes=15), timedelta(days=7))
    now = datetime.now(UTC)
    good = tokens.issue(new_id(), new_id(), now).access_token
    tokens.access_claims(good, now)
    with pytest.raises(Unauthenticated):
        tokens.access_claims(other.issue(new_id(), new_id(), now).access_token, now)
    with pytest.raises(Unauthenticated):
        tokens.access_claims(good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), now)


def test_a_pair_names_its_session_and_the_refresh_token_the_next_rotation() -> None:
    tokens = JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7))
    user, session, now = new_id(), new_id(), datetime.now(UTC)
    pair = tokens.issue(user, session, now)
    claims = tokens.refresh_claims(pair.refresh_token, now)
    assert (claims.user_id, claims.session_id, claims.jti) == (user, session, pair.refresh_jti)
    assert pair.expires_at == now + timedelta(days=7)
    assert claims.expires_at <= pair.expires_at


def test_a_token_without_a_session_is_refused() -> None:
    """Tokens from before sessions (no ``sid``) are not accepted: log in again."""
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": new_id(), "typ": "access", "iss": "dompet", "jti": new_id()}
    old = jwt.encode({**claims, "iat": now, "nbf": now, "exp": now + 600}, SECRET, "HS256")
    with pytest.raises(Unauthenticated):
        JwtTokens(SECRET, timedelta(minutes=15), timedelta(days=7)).access_claims(
            old, datetime.now(UTC)
        )
