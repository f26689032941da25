"""JWT access and refresh tokens (PyJWT, HS256 only, every claim required and checked)."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from dompet.domain.errors import Unauthenticated
from dompet.domain.ids import is_uuid, new_id
from dompet.services.ports import RefreshClaims, TokenPair

ALGORITHM = "HS256"
ISSUER = "dompet"
_REQUIRED = ["exp", "iat", "nbf", "sub", "iss", "typ", "jti"]
ACCESS_CACHE_SIZE = 10_000
"""Verified access tokens remembered (subject, nbf, exp), so a client's next request skips
the HMAC and JSON work (a sixth of a cheap request's CPU); expiry is still checked each time."""


class JwtTokens:
    def __init__(self, secret: str, access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        if len(secret) < 16:
            raise ValueError("the JWT secret is too short")
        self._secret = secret
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._verified: dict[str, tuple[str, int, int]] = {}

    def issue(self, user_id: str, now: datetime) -> TokenPair:
        return TokenPair(
            access_token=self._encode(user_id, "access", now, self._access_ttl),
            refresh_token=self._encode(user_id, "refresh", now, self._refresh_ttl),
        )

    def access_subject(self, token: str, now: datetime) -> str:
        moment = now.timestamp()
        known = self._verified.get(token)
        if known is not None:
            subject, not_before, expires = known
            if not_before <= moment < expires:
                return subject
            raise Unauthenticated()
        claims = self._decode(token, "access", now)
        subject = str(claims["sub"])
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if isinstance(nbf, int) and isinstance(exp, int):
            if len(self._verified) >= ACCESS_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (subject, nbf, exp)
        return subject

    def refresh_claims(self, token: str, now: datetime) -> RefreshClaims:
        claims = self._decode(token, "refresh", now)
        return RefreshClaims(
            user_id=str(claims["sub"]),
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(_int_claim(claims, "exp"), tz=now.tzinfo),
        )

    def _encode(self, user_id: str, typ: str, now: datetime, ttl: timedelta) -> str:
        issued = int(now.timestamp())
        payload = {
            "sub": user_id,
            "typ": typ,
            "iss": ISSUER,
            "jti": new_id(),
            "iat": issued,
            "nbf": issued,
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def _decode(self, token: str, typ: str, now: datetime) -> dict[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Times are checked below against ``now`` (the service's clock), not here.
                options={
                    "require": _REQUIRED,
                    "verify_iat": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise Unauthenticated() from None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if claims.get("typ") != typ or not isinstance(exp, int) or not isinstance(nbf, int):
            raise Unauthenticated()
        if not nbf <= now.timestamp() < exp:
            raise Unauthenticated()
        if not isinstance(claims.get("sub"), str) or not is_uuid(str(claims["sub"])):
            raise Unauthenticated()
        return claims


def _int_claim(claims: dict[str, object], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int):
        raise Unauthenticated()
    return value
