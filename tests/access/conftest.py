"""Helpers for the access tests: real users in the test database and real session cookies."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from itertools import count

import pytest
from access_helpers import CSRF, PASSWORD
from sqlalchemy.orm import Session

from tagwatch.access import sessions
from tagwatch.access.models import User
from tagwatch.access.passwords import hash_password
from tagwatch.access.service import create_user
from tagwatch.settings import Settings

_serial = count(1)


@cache
def _password_hash(password: str) -> str:
    return hash_password(password)


@pytest.fixture
def make_user(db: Session) -> Callable[..., User]:
    """A committed user with the given roles (and scope), unique per call."""

    def build(*roles: str, password: str | None = PASSWORD, **scope: str) -> User:
        username = scope.pop("username", f"user{next(_serial)}-{'-'.join(roles)}")
        user = create_user(db, username=username, roles=list(roles), **scope)
        # Argon2 is slow on purpose; hashing the shared test password once keeps tests quick.
        user.password_hash = _password_hash(password) if password else None
        db.commit()
        return user

    return build


@pytest.fixture
def session_cookie(settings: Settings) -> Callable[[int], str]:
    """The cookie a browser holds after signing in as this user (CSRF token `test-csrf`)."""

    def build(user_id: int) -> str:
        return sessions.dump(settings, {"uid": user_id, "csrf": CSRF})

    return build
