"""Dashboard session cookies (HMAC-SHA256 signed) and the CSRF token bound to each session.

The cookie names a server-side session (store ``sessions``): a valid signature is necessary,
not sufficient; the session must also still be live (dashboard/routes.py asks the store), so
logging out or removing the operator ends it everywhere at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

COOKIE_NAME = "dompet_dashboard"


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    expires_at: int
    nonce: str
    session_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """``issue`` a cookie value, ``read`` it back (None if forged, malformed or expired)."""

    def __init__(self, key: bytes, ttl: timedelta) -> None:
        self._key = key
        self._ttl = ttl

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, username: str, session_id: str, now: datetime) -> str:
        body = {
            "u": username,
            "s": session_id,
            "exp": int((now + self._ttl).timestamp()),
            "n": secrets.token_urlsafe(16),
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(str(body["u"]), int(body["exp"]), str(body["n"]), str(body["s"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= now.timestamp():
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.username}:{session.nonce}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    @property
    def max_age(self) -> int:
        return int(self._ttl.total_seconds())


def session_key(explicit: str | None, jwt_secret: str) -> bytes:
    """DASHBOARD_SESSION_SECRET (or the generated one kept with the JWT secret), else a key
    derived from JWT_SECRET (never the same bytes)."""
    if explicit:
        return explicit.encode()
    return hmac.new(jwt_secret.encode(), b"dompet-dashboard-session", hashlib.sha256).digest()
