"""Password hashing, sign-in with lockout, and the sign-in form through the real app."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from access_helpers import PASSWORD
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tagwatch.access.audit import verify
from tagwatch.access.models import AuditEntry, User
from tagwatch.access.passwords import hash_password, verify_password
from tagwatch.access.service import SignInRefused, authenticate
from tagwatch.db.base import utcnow

LOCK = {"lockout_threshold": 5, "lockout": dt.timedelta(minutes=15)}


def test_hash_is_argon2id_salted_and_verifies_only_the_right_password() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + "x")
    assert not verify_password(None, PASSWORD)
    assert not verify_password("not a hash", PASSWORD)


def test_short_passwords_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="password: must be at least 12"):
        hash_password("short")


def test_five_failures_in_a_row_lock_for_fifteen_minutes(
    db: Session, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    now = utcnow()
    for attempt in range(5):
        with pytest.raises(SignInRefused, match="correct username and password"):
            authenticate(db, user.username, "wrong password!", now=now, **LOCK)
        assert (user.locked_until is None) == (attempt < 4)
    # Locked: even the right password is refused until the lock ends.
    with pytest.raises(SignInRefused, match="locked"):
        authenticate(db, user.username, PASSWORD, now=now + dt.timedelta(minutes=14), **LOCK)
    signed_in = authenticate(
        db, user.username, PASSWORD, now=now + dt.timedelta(minutes=16), **LOCK
    )
    assert signed_in.id == user.id
    assert signed_in.locked_until is None and signed_in.failed_logins == 0
    locks = db.query(AuditEntry).filter_by(action="account.locked", subject_id=str(user.id))
    assert locks.count() == 1


def test_a_success_resets_the_failure_count(db: Session, make_user: Callable[..., User]) -> None:
    user = make_user("analyst")
    for _ in range(4):
        with pytest.raises(SignInRefused):
            authenticate(db, user.username, "wrong password!", **LOCK)
    authenticate(db, user.username, PASSWORD, **LOCK)
    with pytest.raises(SignInRefused):
        authenticate(db, user.username, "wrong password!", **LOCK)
    assert user.locked_until is None and user.failed_logins == 1


def test_unknown_and_inactive_users_get_the_same_answer(
    db: Session, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    user.active = False
    with pytest.raises(SignInRefused, match="correct username and password"):
        authenticate(db, user.username, PASSWORD, **LOCK)
    with pytest.raises(SignInRefused, match="correct username and password"):
        authenticate(db, "nobody-by-this-name", PASSWORD, **LOCK)


def _csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the form carries no CSRF token"
    return match.group(1)


def test_sign_in_form_signs_in_and_audits(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    browser = TestClient(app)
    form = browser.get("/sign-in")
    assert form.status_code == 200
    response = browser.post(
        "/sign-in",
        data={"username": user.username, "password": PASSWORD, "csrf_token": _csrf_from(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # only in production
    me = browser.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["username"] == user.username
    assert "report:read" in me.json()["permissions"]
    assert db.query(AuditEntry).filter_by(action="sign_in", subject_id=str(user.id)).count() == 1
    assert verify(db).ok


def test_sign_in_without_the_forms_token_is_refused(
    app: FastAPI, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    browser = TestClient(app)
    response = browser.post(
        "/sign-in", data={"username": user.username, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 400
    assert "The form has expired" in response.text
    assert browser.get("/api/v1/me").status_code == 401


def test_wrong_password_shows_an_error_and_no_session(
    app: FastAPI, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    browser = TestClient(app)
    token = _csrf_from(browser.get("/sign-in").text)
    response = browser.post(
        "/sign-in", data={"username": user.username, "password": "wrong!", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "Enter a correct username and password" in response.text
    assert browser.get("/api/v1/me").status_code == 401


def test_sign_in_only_redirects_within_the_site(
    app: FastAPI, make_user: Callable[..., User]
) -> None:
    user = make_user("analyst")
    for target, expected in (("/audit", "/audit"), ("//evil.example", "/account")):
        browser = TestClient(app)
        token = _csrf_from(browser.get("/sign-in").text)
        response = browser.post(
            "/sign-in",
            data={
                "username": user.username,
                "password": PASSWORD,
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == expected


def test_hashes_with_older_parameters_are_upgraded_at_sign_in(
    db: Session, make_user: Callable[..., User]
) -> None:
    from argon2 import PasswordHasher

    user = make_user("analyst", password=None)
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    old = user.password_hash
    authenticate(db, user.username, PASSWORD, **LOCK)
    assert user.password_hash != old and verify_password(user.password_hash, PASSWORD)
    assert "m=19456,t=2,p=1" in user.password_hash
