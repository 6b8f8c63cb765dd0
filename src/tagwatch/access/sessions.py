"""Signed session cookies and the CSRF token they carry.

The cookie holds a small dict signed with the app's secret key and a timestamp
(itsdangerous); it is refused once older than `session_max_age_seconds`. It carries the
signed-in user's id, the CSRF token, and during OIDC sign-in the state, nonce and PKCE
verifier. Nothing personal is stored in it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup, escape

from tagwatch.settings import Settings

COOKIE_NAME = "tagwatch_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SALT = "tagwatch.session"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def load(settings: Settings, cookie: str | None) -> dict[str, Any] | None:
    """The session from a cookie value, or None if absent, tampered with or expired."""
    if not cookie:
        return None
    try:
        data = _serializer(settings).loads(cookie, max_age=settings.session_max_age_seconds)
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    return data if isinstance(data, dict) else None


def dump(settings: Settings, data: dict[str, Any]) -> str:
    return _serializer(settings).dumps(data)


class RequestSession:
    """The session of one request; the middleware writes the cookie back if it changed."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        self.existed = data is not None
        self.data: dict[str, Any] = dict(data or {})
        self.changed = False
        self.cleared = False

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed = True

    def pop(self, key: str) -> Any:
        self.changed = True
        return self.data.pop(key, None)

    def csrf_token(self) -> str:
        token = self.data.get("csrf")
        if not token:
            token = secrets.token_urlsafe(32)
            self.set("csrf", token)
        return str(token)

    def csrf_matches(self, offered: str | None) -> bool:
        expected = self.data.get("csrf")
        return bool(expected and offered) and hmac.compare_digest(str(expected), str(offered))

    def start(self, user_id: int) -> None:
        """A fresh session for a newly signed-in user (new CSRF token: no fixation)."""
        self.data = {"uid": user_id, "csrf": secrets.token_urlsafe(32)}
        self.changed = True

    def clear(self) -> None:
        self.data = {}
        self.cleared = True
        self.changed = True


def request_session(request: Request) -> RequestSession:
    session = getattr(request.state, "session", None)
    if session is None:
        session = RequestSession(None)
        request.state.session = session
    return session


def write_cookie(response: Response, settings: Settings, session: RequestSession) -> None:
    if not session.changed:
        return
    secure = settings.environment == "production"
    if session.cleared and not session.data:
        response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="lax")
        return
    response.set_cookie(
        COOKIE_NAME,
        dump(settings, session.data),
        max_age=settings.session_max_age_seconds,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def csrf_input(request: Request) -> Markup:
    """A hidden form field with this session's CSRF token; put it inside every POST form."""
    token = request_session(request).csrf_token()
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')
