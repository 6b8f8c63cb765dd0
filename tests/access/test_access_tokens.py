"""API tokens: shown once, stored hashed, limited to their scopes, revocable, expiring."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tagwatch.access.models import ApiToken, User
from tagwatch.access.service import create_token, hash_token, revoke_token
from tagwatch.db.base import utcnow


def _bearer(app: FastAPI, secret: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {secret}"})


def test_only_a_hash_of_the_secret_is_stored(db: Session, make_user: Callable[..., User]) -> None:
    user = make_user("administrator", password=None)
    issued = create_token(db, user, "nightly export", ["audit:read"])
    stored = db.get(ApiToken, issued.token.id)
    assert stored is not None
    assert stored.token_hash == hash_token(issued.secret)
    assert issued.secret not in (stored.token_hash, stored.name)


def test_token_acts_for_its_user_within_its_scopes(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user("administrator", password=None)
    issued = create_token(db, admin, "audit reader", ["audit:read"])
    db.commit()
    client = _bearer(app, issued.secret)
    me = client.get("/api/v1/me").json()
    assert me["username"] == admin.username and me["token_scopes"] == ["audit:read"]
    assert client.get("/api/v1/audit").status_code == 200
    # The user may manage users, but this token may not.
    assert client.get("/api/v1/users").status_code == 403
    db.expire_all()
    assert db.get(ApiToken, issued.token.id).last_used_at is not None


def test_bearer_calls_need_no_csrf_token(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user("administrator", password=None)
    issued = create_token(db, admin, "provisioning", ["user:admin"])
    db.commit()
    created = _bearer(app, issued.secret).post(
        "/api/v1/users", json={"username": "by-token", "roles": ["analyst"]}
    )
    assert created.status_code == 201, created.text


def test_revoked_expired_and_unknown_tokens_are_refused(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user("administrator", password=None)
    revoked = create_token(db, admin, "old", ["audit:read"])
    expired = create_token(
        db, admin, "temp", ["audit:read"], expires_at=utcnow() - dt.timedelta(seconds=1)
    )
    revoke_token(db, revoked.token.id)
    db.commit()
    for secret in (revoked.secret, expired.secret, "tw_not-a-real-token", "garbage"):
        assert _bearer(app, secret).get("/api/v1/audit").status_code == 401


def test_revoking_through_the_api_takes_effect_at_once(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user("administrator", password=None)
    gateway = make_user("device_gateway", password=None)
    manager = create_token(db, admin, "admin client", ["user:admin"])
    db.commit()
    admin_client = _bearer(app, manager.secret)
    issued = admin_client.post(
        "/api/v1/tokens",
        json={"username": gateway.username, "name": "gateway", "scopes": ["telemetry:ingest"]},
    )
    assert issued.status_code == 201
    secret = issued.json()["secret"]
    assert _bearer(app, secret).get("/api/v1/me").status_code == 200
    revoked = admin_client.post(f"/api/v1/tokens/{issued.json()['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert _bearer(app, secret).get("/api/v1/me").status_code == 401
    assert "secret" not in revoked.json()


def test_scopes_must_be_known_and_held_by_the_user(
    db: Session, make_user: Callable[..., User]
) -> None:
    analyst = make_user("analyst", password=None)
    with pytest.raises(ValueError, match="scopes: unknown permission"):
        create_token(db, analyst, "x", ["nonsense:do"])
    with pytest.raises(ValueError, match="does not hold location:read"):
        create_token(db, analyst, "x", ["location:read"])
    with pytest.raises(ValueError, match="at least one"):
        create_token(db, analyst, "x", [])
