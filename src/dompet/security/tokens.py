"""JWT access and refresh tokens (PyJWT, HS256 only, every claim required and checked).

Each token names its session (``sid``): the store says whether the session is still live,
on every request (an ended session's tokens are refused from then on, in every process).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from dompet.domain.errors import Unauthenticated
from dompet.domain.ids import is_uuid, new_id
from dompet.services.ports import AccessClaims, RefreshClaims, TokenPair

ALGORITHM = "HS256"
ISSUER = "dompet"
_REQUIRED = ["exp", "iat", "nbf", "sub", "sid", "iss", "typ", "jti"]
ACCESS_CACHE_SIZE = 10_000
"""Verified access tokens remembered (claims, nbf, exp), so a client's next request skips
the HMAC and JSON work (a sixth of a cheap request's CPU); expiry is still checked each time,
and the session by the caller (never cached)."""


class JwtTokens:
    def __init__(self, secret: str, access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        if len(secret) < 16:
            raise ValueError("the JWT secret is too short")
        self._secret = secret
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._verified: dict[str, tuple[AccessClaims, int, int]] = {}

    def issue(self, user_id: str, session_id: str, now: datetime) -> TokenPair:
        refresh_jti = new_id()
        return TokenPair(
            access_token=self._encode(user_id, session_id, "access", now, self._access_ttl),
            refresh_token=self._encode(
                user_id, session_id, "refresh", now, self._refresh_ttl, refresh_jti
            ),
            session_id=session_id,
            refresh_jti=refresh_jti,
            expires_at=now + max(self._access_ttl, self._refresh_ttl),
        )

    def access_claims(self, token: str, now: datetime) -> AccessClaims:
        moment = now.timestamp()
        known = self._verified.get(token)
        if known is not None:
            claims, not_before, expires = known
            if not_before <= moment < expires:
                return claims
            raise Unauthenticated()
        decoded = self._decode(token, "access", now)
        claims = AccessClaims(str(decoded["sub"]), str(decoded["sid"]))
        nbf, exp = decoded.get("nbf"), decoded.get("exp")
        if isinstance(nbf, int) and isinstance(exp, int):
            if len(self._verified) >= ACCESS_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (claims, nbf, exp)
        return claims

    def refresh_claims(self, token: str, now: datetime) -> RefreshClaims:
        claims = self._decode(token, "refresh", now)
        return RefreshClaims(
            user_id=str(claims["sub"]),
            session_id=str(claims["sid"]),
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(_int_claim(claims, "exp"), tz=now.tzinfo),
        )

    def _encode(
        self,
        user_id: str,
        session_id: str,
        typ: str,
        now: datetime,
        ttl: timedelta,
        jti: str | None = None,
    ) -> str:
        issued = int(now.timestamp())
        payload = {
            "sub": user_id,
            "sid": session_id,
            "typ": typ,
            "iss": ISSUER,
            "jti": jti or new_id(),
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
        for name in ("sub", "sid", "jti"):
            value = claims.get(name)
            if not isinstance(value, str) or not is_uuid(value):
                raise Unauthenticated()
        return claims


def _int_claim(claims: dict[str, object], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int):
        raise Unauthenticated()
    return value
