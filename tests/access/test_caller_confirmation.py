"""A signed-in caller seen before is taken on trust only until confirmed against the account,
before anything is read or shown: a change to the account applies from the very next request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access import sessions
from tagwatch.access.models import AuditEntry, User

HTML = {"accept": "text/html"}


def _browser(app: FastAPI, cookie: str) -> TestClient:
    browser = TestClient(app, headers=HTML)
    browser.cookies.set(sessions.COOKIE_NAME, cookie)
    return browser


def _views(db: Session, user: User) -> int:
    db.expire_all()
    entries = db.scalars(select(AuditEntry).where(AuditEntry.user_id == user.id)).all()
    return sum(1 for e in entries if e.action == "caseload.view")


def _seen_twice(browser: TestClient) -> None:
    """The first page resolves the caller up front; the second takes them on trust."""
    for _ in range(2):
        assert browser.get("/caseload").status_code == 200


def test_a_deactivated_account_is_refused_on_its_very_next_page(
    app: FastAPI, db: Session, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("probation_practitioner")
    browser = _browser(app, session_cookie(user.id))
    _seen_twice(browser)
    assert _views(db, user) == 2
    user.active = False
    db.commit()
    refused = browser.get("/caseload", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/sign-in")
    removal = refused.headers["set-cookie"].lower()
    assert removal.startswith(sessions.COOKIE_NAME) and "max-age=0" in removal
    assert _views(db, user) == 2  # nothing was shown, so nothing is audited


def test_every_route_confirms_a_caller_seen_before(
    app: FastAPI, db: Session, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("probation_practitioner", display_name="Jo Practitioner")
    browser = _browser(app, session_cookie(user.id))
    _seen_twice(browser)
    user.active = False
    db.commit()
    assert browser.get("/api/v1/me", headers={"accept": "application/json"}).status_code == 401
    user.active = True
    db.commit()
    _seen_twice(browser)
    user.active = False
    db.commit()
    missing = browser.get("/no-such-page")  # an error page, shown without the account's name
    assert missing.status_code == 404 and "Jo Practitioner" not in missing.text


def test_a_removed_permission_is_refused_on_the_next_page(
    app: FastAPI, db: Session, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("probation_practitioner")
    browser = _browser(app, session_cookie(user.id))
    _seen_twice(browser)
    user.roles = ["analyst"]
    db.commit()
    assert browser.get("/caseload").status_code == 403
    assert _views(db, user) == 2


def test_a_page_shows_the_account_as_it_is_now(
    app: FastAPI, db: Session, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("probation_practitioner", display_name="Before Change")
    browser = _browser(app, session_cookie(user.id))
    _seen_twice(browser)
    user.display_name = "After Change"
    user.roles = ["probation_manager"]
    db.commit()
    page = browser.get("/caseload")
    assert page.status_code == 200
    assert "After Change" in page.text and "Before Change" not in page.text
    assert "Delivery unit caseload" in page.text  # the heading follows the role held now
    db.expire_all()
    entry = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert entry.action == "caseload.view" and entry.role == "probation_manager"
