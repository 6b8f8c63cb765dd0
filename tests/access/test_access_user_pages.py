"""Administrators' pages: add a user, issue a token shown once, revoke it, lock and deactivate."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from access_helpers import CSRF
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry, User
from tagwatch.access.repository import user_by_username
from tagwatch.access.sessions import COOKIE_NAME
from tagwatch.db.base import utcnow


def _admin_browser(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> TestClient:
    browser = TestClient(app, follow_redirects=False)
    browser.cookies.set(COOKIE_NAME, session_cookie(make_user("administrator", password=None).id))
    return browser


def test_add_a_user_then_issue_and_revoke_a_token(
    app: FastAPI,
    db: Session,
    make_user: Callable[..., User],
    session_cookie: Callable[[int], str],
) -> None:
    browser = _admin_browser(app, make_user, session_cookie)
    assert "Add a user" in browser.get("/users").text
    form = {
        "csrf_token": CSRF,
        "username": "gw-page",
        "roles": ["device_gateway"],
        "team": "Gateways",
    }
    refused = browser.post("/users/new", data={**form, "roles": []})
    assert refused.status_code == 400 and "roles: give at least one role" in refused.text
    created = browser.post("/users/new", data=form)
    assert created.status_code == 303
    user = user_by_username(db, "gw-page")
    assert user is not None and user.roles == ["device_gateway"] and user.team is not None
    assert created.headers["location"] == f"/users/{user.id}"

    page = browser.post(
        f"/users/{user.id}/tokens",
        data={"csrf_token": CSRF, "name": "north gateway", "scopes": ["telemetry:ingest"]},
    )
    assert page.status_code == 200
    secret = re.search(r"(tw_[A-Za-z0-9_\-]+)", page.text)
    assert secret, "the new secret is shown once"
    assert secret.group(1) not in browser.get(f"/users/{user.id}").text
    api = TestClient(app, headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert api.get("/api/v1/me").status_code == 200
    token_id = re.search(r"/tokens/(\d+)/revoke", browser.get(f"/users/{user.id}").text)
    assert token_id
    revoke = browser.post(
        f"/users/{user.id}/tokens/{token_id.group(1)}/revoke", data={"csrf_token": CSRF}
    )
    assert revoke.status_code == 303
    assert api.get("/api/v1/me").status_code == 401
    actions = {
        e.action
        for e in db.query(AuditEntry).filter(AuditEntry.subject_type.in_(["user", "api_token"]))
    }
    assert {"user.create", "token.create", "token.revoke"} <= actions


def test_token_form_refuses_scopes_the_user_lacks(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    browser = _admin_browser(app, make_user, session_cookie)
    analyst = make_user("analyst", password=None)
    page = browser.post(
        f"/users/{analyst.id}/tokens",
        data={"csrf_token": CSRF, "name": "x", "scopes": ["location:read"]},
    )
    assert page.status_code == 400 and "does not hold location:read" in page.text
    bad_days = browser.post(
        f"/users/{analyst.id}/tokens",
        data={"csrf_token": CSRF, "name": "x", "scopes": ["report:read"], "days": "soon"},
    )
    assert bad_days.status_code == 400 and "days: enter a whole number" in bad_days.text


def test_unlock_and_deactivate(
    app: FastAPI,
    db: Session,
    make_user: Callable[..., User],
    session_cookie: Callable[[int], str],
) -> None:
    browser = _admin_browser(app, make_user, session_cookie)
    user = make_user("analyst", password=None)
    user.locked_until = utcnow() + dt.timedelta(minutes=10)
    db.commit()
    assert "Locked until" in browser.get(f"/users/{user.id}").text
    assert browser.post(f"/users/{user.id}/unlock", data={"csrf_token": CSRF}).status_code == 303
    db.expire_all()
    assert db.get(User, user.id).locked_until is None

    theirs = TestClient(app)
    theirs.cookies.set(COOKIE_NAME, session_cookie(user.id))
    assert theirs.get("/api/v1/me").status_code == 200
    browser.post(f"/users/{user.id}/deactivate", data={"csrf_token": CSRF})
    assert theirs.get("/api/v1/me").status_code == 401
    browser.post(f"/users/{user.id}/reactivate", data={"csrf_token": CSRF})
    theirs.cookies.set(COOKIE_NAME, session_cookie(user.id))
    assert theirs.get("/api/v1/me").status_code == 200
    assert browser.get("/users/999999").status_code == 404
