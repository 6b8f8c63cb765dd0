"""OIDC sign-in against a local identity provider: the whole code flow, then what can go wrong."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalProvider, ProviderBehaviour
from sqlalchemy.orm import Session

from tagwatch.access.oidc import OidcError, roles_for_groups
from tagwatch.access.repository import user_by_username
from tagwatch.settings import Settings

GROUP_ROLES = {
    "em-practitioners": ["probation_practitioner"],
    "em-managers": ["probation_manager"],
    "em-high-profile": ["restricted_cases"],
}


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    running = LocalProvider()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def oidc_app(app: FastAPI, settings: Settings, provider: LocalProvider) -> FastAPI:
    provider.behaviour = ProviderBehaviour()
    app.state.settings = settings.model_copy(
        update={
            "oidc_discovery_url": provider.discovery_url,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_group_roles": GROUP_ROLES,
        }
    )
    return app


def _sign_in(app: FastAPI) -> tuple[TestClient, httpx.Response]:
    """Follow the browser's path: to the provider, back to our callback."""
    browser = TestClient(app, follow_redirects=False)
    start = browser.get("/sign-in/oidc")
    assert start.status_code == 303, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/sign-in/oidc/callback"
    return browser, browser.get(f"{back.path}?{back.query}")


def test_groups_become_roles() -> None:
    assert roles_for_groups(["em-managers", "em-high-profile", "other"], GROUP_ROLES) == [
        "probation_manager",
        "restricted_cases",
    ]
    assert roles_for_groups(["unmapped"], GROUP_ROLES) == []
    with pytest.raises(OidcError, match="unknown role"):
        roles_for_groups(["g"], {"g": ["superuser"]})


def test_code_flow_signs_in_and_creates_the_user(oidc_app: FastAPI, db: Session) -> None:
    browser, callback = _sign_in(oidc_app)
    assert callback.status_code == 303 and callback.headers["location"] == "/account"
    me = browser.get("/api/v1/me").json()
    assert me["username"] == "jo.bloggs" and me["roles"] == ["probation_practitioner"]
    user = user_by_username(db, "jo.bloggs")
    assert user is not None and user.password_hash is None and user.email == "jo.bloggs@example.org"


def test_roles_follow_the_providers_groups_at_each_sign_in(
    oidc_app: FastAPI, provider: LocalProvider
) -> None:
    _sign_in(oidc_app)
    provider.behaviour = ProviderBehaviour(groups=["em-managers", "em-high-profile"])
    browser, _ = _sign_in(oidc_app)
    assert browser.get("/api/v1/me").json()["roles"] == ["probation_manager", "restricted_cases"]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (ProviderBehaviour(groups=["nothing-mapped"]), "no tagwatch role"),
        (ProviderBehaviour(sign_with_unpublished_key=True), "did not verify"),
        (ProviderBehaviour(wrong_nonce=True), "did not verify"),
        (ProviderBehaviour(wrong_audience=True), "did not verify"),
    ],
)
def test_untrustworthy_answers_are_refused(
    oidc_app: FastAPI, provider: LocalProvider, behaviour: ProviderBehaviour, message: str
) -> None:
    provider.behaviour = behaviour
    browser, callback = _sign_in(oidc_app)
    assert callback.status_code == 400 and message in callback.text
    assert browser.get("/api/v1/me").status_code == 401


def test_callback_without_a_matching_state_is_refused(
    oidc_app: FastAPI, provider: LocalProvider
) -> None:
    browser = TestClient(oidc_app, follow_redirects=False)
    browser.get("/sign-in/oidc")
    before = provider.token_requests
    callback = browser.get("/sign-in/oidc/callback?code=abc&state=forged")
    assert callback.status_code == 400 and "did not start here" in callback.text
    assert provider.token_requests == before  # refused before the code was spent


def test_a_callback_cannot_be_replayed(oidc_app: FastAPI, provider: LocalProvider) -> None:
    browser = TestClient(oidc_app, follow_redirects=False)
    start = browser.get("/sign-in/oidc")
    back = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    assert browser.get(f"{back.path}?{back.query}").status_code == 303
    assert browser.get(f"{back.path}?{back.query}").status_code == 400
