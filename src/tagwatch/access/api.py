"""JSON API: who am I, users, API tokens, audit search. No route edits or deletes audit entries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime

from tagwatch.access import repository, service
from tagwatch.access.audit import record
from tagwatch.access.audit_search import MAX_PAGE_SIZE, audited_search
from tagwatch.access.permissions import public, require
from tagwatch.access.principal import Principal
from tagwatch.access.schemas import (
    AuditEntryOut,
    AuditPage,
    Me,
    TokenCreate,
    TokenIssued,
    TokenOut,
    UserCreate,
    UserOut,
)
from tagwatch.db.deps import DbSession

router = APIRouter(tags=["access"])


def _unprocessable(error: ValueError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error))


@router.get("/me", response_model=Me)
def me(principal: Annotated[Principal | None, public()]) -> Me:
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in to continue")
    return Me(
        username=principal.username,
        display_name=principal.display_name,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        team_id=principal.team_id,
        delivery_unit_code=principal.delivery_unit_code,
        region_code=principal.region_code,
        force_code=principal.force_code,
        token_scopes=sorted(principal.token_scopes) if principal.token_scopes else None,
    )


@router.get("/users", response_model=list[UserOut])
def list_users(
    session: DbSession, principal: Annotated[Principal, require("user:admin")]
) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in repository.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(
    body: UserCreate, session: DbSession, principal: Annotated[Principal, require("user:admin")]
) -> UserOut:
    try:
        user = service.create_user(
            session,
            username=body.username,
            roles=body.roles,
            display_name=body.display_name,
            email=body.email,
            password=body.password,
            team_name=body.team,
            delivery_unit_code=body.delivery_unit_code,
            region_code=body.region_code,
            force_code=body.force_code,
        )
    except ValueError as error:
        raise _unprocessable(error) from error
    record(
        session,
        principal,
        "user.create",
        subject_type="user",
        subject_id=user.id,
        detail={"username": user.username, "roles": user.roles},
    )
    return UserOut.model_validate(user)


@router.post("/tokens", response_model=TokenIssued, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, session: DbSession, principal: Annotated[Principal, require("user:admin")]
) -> TokenIssued:
    user = repository.user_by_username(session, body.username)
    if user is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "username: no such user")
    try:
        issued = service.create_token(
            session, user, body.name, body.scopes, expires_at=body.expires_at
        )
    except ValueError as error:
        raise _unprocessable(error) from error
    record(
        session,
        principal,
        "token.create",
        subject_type="api_token",
        subject_id=issued.token.id,
        detail={"username": user.username, "scopes": issued.token.scopes},
    )
    out = TokenOut.model_validate(issued.token)
    return TokenIssued(**out.model_dump(), secret=issued.secret)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut)
def revoke_token(
    token_id: int, session: DbSession, principal: Annotated[Principal, require("user:admin")]
) -> TokenOut:
    try:
        token = service.revoke_token(session, token_id)
    except ValueError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    record(session, principal, "token.revoke", subject_type="api_token", subject_id=token.id)
    return TokenOut.model_validate(token)


@router.get("/audit", response_model=AuditPage)
def search_audit(
    session: DbSession,
    principal: Annotated[Principal, require("audit:read")],
    username: str | None = None,
    action: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    query = repository.AuditQuery(
        username=username,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    try:
        total, entries = audited_search(session, principal, query)
    except ValueError as error:
        raise _unprocessable(error) from error
    return AuditPage(total=total, entries=[AuditEntryOut.model_validate(e) for e in entries])
