"""Administrators' pages: accounts, locks, and API tokens (each secret shown once)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tagwatch.access import repository, service
from tagwatch.access.audit import record
from tagwatch.access.models import User
from tagwatch.access.permissions import PERMISSIONS, require
from tagwatch.access.principal import Principal
from tagwatch.access.roles import ROLE_DESCRIPTIONS, ROLES, permissions_for
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession
from tagwatch.web.templating import templates

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, require("user:admin")]
USER_FIELDS = (
    "username",
    "display_name",
    "email",
    "team",
    "delivery_unit_code",
    "region_code",
    "force_code",
)


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    return templates().TemplateResponse(request, name, context, status_code=status_code)


def _user(session: Session, user_id: int) -> User:
    user = repository.user_by_id(session, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such user")
    return user


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: DbSession, principal: Admin) -> Response:
    return _render(
        request,
        "access/users.html",
        {"title": "Users", "users": repository.list_users(session), "now": utcnow()},
    )


def _new_user_form(request: Request, values: dict[str, Any], error: str | None = None) -> Response:
    return _render(
        request,
        "access/user_new.html",
        {"title": "New user", "values": values, "error": error, "roles": ROLE_DESCRIPTIONS},
        status_code=400 if error else 200,
    )


@router.get("/users/new", response_class=HTMLResponse)
def new_user_page(request: Request, principal: Admin) -> Response:
    return _new_user_form(request, {"roles": []})


@router.post("/users/new", response_class=HTMLResponse)
async def create_user(request: Request, session: DbSession, principal: Admin) -> Response:
    form = await request.form()
    values: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in USER_FIELDS}
    values["roles"] = [str(r) for r in form.getlist("roles")]
    password = str(form.get("password", ""))
    try:
        user = service.create_user(
            session,
            username=values["username"],
            roles=values["roles"],
            display_name=values["display_name"] or None,
            email=values["email"] or None,
            password=password or None,
            team_name=values["team"] or None,
            delivery_unit_code=values["delivery_unit_code"] or None,
            region_code=values["region_code"] or None,
            force_code=values["force_code"] or None,
        )
    except ValueError as error:
        return _new_user_form(request, values, str(error))
    record(
        session,
        principal,
        "user.create",
        subject_type="user",
        subject_id=user.id,
        detail={"username": user.username, "roles": user.roles},
    )
    return RedirectResponse(f"/users/{user.id}", status_code=303)


def _user_page(
    request: Request,
    session: Session,
    user: User,
    *,
    secret: str | None = None,
    error: str | None = None,
) -> Response:
    holds = permissions_for(user.roles)
    return _render(
        request,
        "access/user.html",
        {
            "title": user.display_name,
            "user": user,
            "now": utcnow(),
            "tokens": repository.tokens_for_user(session, user.id),
            "scopes": [(p, PERMISSIONS[p]) for p in PERMISSIONS if p in holds],
            "role_names": {r: ROLE_DESCRIPTIONS.get(r, r) for r in user.roles if r in ROLES},
            "secret": secret,
            "error": error,
        },
        status_code=400 if error else 200,
    )


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, user_id: int, session: DbSession, principal: Admin) -> Response:
    return _user_page(request, session, _user(session, user_id))


@router.post("/users/{user_id}/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request, user_id: int, session: DbSession, principal: Admin
) -> Response:
    user = _user(session, user_id)
    form = await request.form()
    days_text = str(form.get("days", "")).strip()
    try:
        if days_text and (not days_text.isdigit() or int(days_text) < 1):
            raise ValueError("days: enter a whole number of days, 1 or more")
        expires = utcnow() + dt.timedelta(days=int(days_text)) if days_text else None
        issued = service.create_token(
            session,
            user,
            str(form.get("name", "")).strip() or "api client",
            [str(s) for s in form.getlist("scopes")],
            expires_at=expires,
        )
    except ValueError as error:
        return _user_page(request, session, user, error=str(error))
    record(
        session,
        principal,
        "token.create",
        subject_type="api_token",
        subject_id=issued.token.id,
        detail={"username": user.username, "scopes": issued.token.scopes},
    )
    # Shown on this response only; reloading the user's page never shows it again.
    return _user_page(request, session, user, secret=issued.secret)


@router.post("/users/{user_id}/tokens/{token_id}/revoke")
def revoke_token(user_id: int, token_id: int, session: DbSession, principal: Admin) -> Response:
    user = _user(session, user_id)
    if token_id not in {t.id for t in repository.tokens_for_user(session, user.id)}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such token for this user")
    service.revoke_token(session, token_id)
    record(session, principal, "token.revoke", subject_type="api_token", subject_id=token_id)
    return RedirectResponse(f"/users/{user_id}", status_code=303)


@router.post("/users/{user_id}/unlock")
def unlock_user(user_id: int, session: DbSession, principal: Admin) -> Response:
    user = _user(session, user_id)
    service.unlock_user(user)
    record(session, principal, "user.unlock", subject_type="user", subject_id=user.id)
    return RedirectResponse(f"/users/{user_id}", status_code=303)


@router.post("/users/{user_id}/deactivate")
def deactivate_user(user_id: int, session: DbSession, principal: Admin) -> Response:
    user = _user(session, user_id)
    service.set_active(user, False)
    record(session, principal, "user.deactivate", subject_type="user", subject_id=user.id)
    return RedirectResponse(f"/users/{user_id}", status_code=303)


@router.post("/users/{user_id}/reactivate")
def reactivate_user(user_id: int, session: DbSession, principal: Admin) -> Response:
    user = _user(session, user_id)
    service.set_active(user, True)
    record(session, principal, "user.reactivate", subject_type="user", subject_id=user.id)
    return RedirectResponse(f"/users/{user_id}", status_code=303)
