"""Signed session cookies, CSRF on forms, security headers and the content security policy."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from access_helpers import CSRF
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tagwatch.access import sessions
from tagwatch.access.middleware import refuse_development_secrets
from tagwatch.access.models import User
from tagwatch.access.principal import Principal
from tagwatch.settings import Settings


def _browser(app: FastAPI, cookie: str) -> TestClient:
    browser = TestClient(app)
    browser.cookies.set(sessions.COOKIE_NAME, cookie)
    return browser


def test_cookie_round_trips_and_refuses_tampering(settings: Settings) -> None:
    cookie = sessions.dump(settings, {"uid": 7, "csrf": "x"})
    assert sessions.load(settings, cookie) == {"uid": 7, "csrf": "x"}
    payload, _, signature = cookie.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert sessions.load(settings, forged) is None
    other_key = settings.model_copy(update={"secret_key": "another-secret"})
    assert sessions.load(other_key, cookie) is None
    assert sessions.load(settings, None) is None


def test_cookie_expires_after_the_session_lifetime(settings: Settings) -> None:
    age = settings.session_max_age_seconds + 60

    class SignedEarlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    old = URLSafeTimedSerializer(
        settings.secret_key, salt=sessions._SALT, signer=SignedEarlier
    ).dumps({"uid": 7})
    assert sessions.load(settings, old) is None
    fresh = settings.model_copy(update={"session_max_age_seconds": age + 60})
    assert sessions.load(fresh, old) == {"uid": 7}


def test_expired_or_forged_cookie_means_signed_out(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("analyst")
    assert _browser(app, session_cookie(user.id)).get("/api/v1/me").status_code == 200
    assert _browser(app, session_cookie(user.id) + "x").get("/api/v1/me").status_code == 401


def test_deactivated_user_loses_the_session(
    app: FastAPI, db, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("analyst")
    user.active = False
    db.commit()
    browser = _browser(app, session_cookie(user.id))
    assert browser.get("/api/v1/me").status_code == 401


def test_forms_posted_on_a_session_need_the_csrf_token(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("analyst")
    cookie = session_cookie(user.id)
    refused = _browser(app, cookie).post("/sign-out", data={}, follow_redirects=False)
    assert refused.status_code == 403
    forged = _browser(app, cookie).post(
        "/sign-out", data={"csrf_token": "guess"}, follow_redirects=False
    )
    assert forged.status_code == 403
    browser = _browser(app, cookie)
    accepted = browser.post("/sign-out", data={"csrf_token": CSRF}, follow_redirects=False)
    assert accepted.status_code == 303
    removal = accepted.headers["set-cookie"].lower()
    assert removal.startswith(sessions.COOKIE_NAME) and "max-age=0" in removal


def test_json_calls_on_a_session_need_the_csrf_header(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    admin = make_user("administrator")
    body = {"username": "csrf-target", "roles": ["analyst"]}
    browser = _browser(app, session_cookie(admin.id))
    assert browser.post("/api/v1/users", json=body).status_code == 403
    created = browser.post("/api/v1/users", json=body, headers={"X-CSRF-Token": CSRF})
    assert created.status_code == 201


def test_pages_render_the_token_from_the_session(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("analyst")
    page = _browser(app, session_cookie(user.id)).get("/account")
    assert page.status_code == 200
    assert f'name="csrf_token" value="{CSRF}"' in page.text


def test_every_response_has_a_csp_whose_nonce_the_inline_script_carries(app: FastAPI) -> None:
    browser = TestClient(app)
    first, second = browser.get("/sign-in"), browser.get("/sign-in")
    policy = first.headers["content-security-policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", policy)
    assert nonce, policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", first.text)
    assert inline, "the page has GOV.UK Frontend's inline script"
    assert all(f'nonce="{nonce.group(1)}"' in attributes for attributes in inline)
    assert first.headers["content-security-policy"] != second.headers["content-security-policy"]
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["x-frame-options"] == "DENY"
    assert browser.get("/healthz").headers["content-security-policy"].startswith("default-src")


def test_signed_in_responses_are_not_cached(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    user = make_user("analyst")
    assert _browser(app, session_cookie(user.id)).get("/account").headers["cache-control"] == (
        "no-store"
    )


def test_production_cookies_are_secure_and_hsts_is_sent(
    app: FastAPI, settings: Settings, make_user: Callable[..., User]
) -> None:
    app.state.settings = settings.model_copy(update={"environment": "production"})
    browser = TestClient(app, base_url="https://testserver")
    response = browser.get("/sign-in")
    assert "secure" in response.headers["set-cookie"].lower()
    assert "max-age=" in response.headers["strict-transport-security"]


def test_templates_see_the_same_caller_as_the_guards(
    make_client: Callable[..., TestClient],
) -> None:
    caller = Principal(
        user_id=None,
        username="overridden",
        display_name="Overridden Caller",
        roles=frozenset({"administrator"}),
        permissions=frozenset({"user:admin"}),
    )
    page = make_client(caller).get("/account")
    assert page.status_code == 200 and "Overridden Caller" in page.text


def test_multipart_forms_carry_the_token_too(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    admin = make_user("administrator")
    upload = {"attachment": ("note.txt", b"kept for the handler", "text/plain")}
    form = {"username": "multipart-user", "roles": "analyst"}
    browser = _browser(app, session_cookie(admin.id))
    refused = browser.post("/users/new", data=form, files=upload, follow_redirects=False)
    assert refused.status_code == 403
    accepted = browser.post(
        "/users/new", data={**form, "csrf_token": CSRF}, files=upload, follow_redirects=False
    )
    # The handler still reads the whole form after the middleware has checked it.
    assert accepted.status_code == 303, accepted.text


def test_production_refuses_the_development_secrets(settings: Settings) -> None:
    production = settings.model_copy(
        update={"environment": "production", "pseudonym_key": "a-real-pseudonym-key"}
    )
    refuse_development_secrets(production)
    with pytest.raises(ValueError, match="pseudonym_key"):
        refuse_development_secrets(
            production.model_copy(
                update={"pseudonym_key": Settings.model_fields["pseudonym_key"].default}
            )
        )
    with pytest.raises(ValueError, match="secret_key: set TAGWATCH_SECRET_KEY"):
        refuse_development_secrets(
            production.model_copy(
                update={"secret_key": Settings.model_fields["secret_key"].default}
            )
        )
