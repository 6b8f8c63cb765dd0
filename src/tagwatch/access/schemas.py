"""API shapes for users, tokens and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Me(BaseModel):
    username: str
    display_name: str
    roles: list[str]
    permissions: list[str]
    team_id: int | None
    delivery_unit_code: str | None
    region_code: str | None
    force_code: str | None
    token_scopes: list[str] | None


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    display_name: str | None = None
    email: str | None = None
    roles: list[str] = Field(min_length=1)
    password: str | None = None
    team: str | None = None
    delivery_unit_code: str | None = None
    region_code: str | None = None
    force_code: str | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    email: str | None
    roles: list[str]
    team_id: int | None
    delivery_unit_code: str | None
    region_code: str | None
    force_code: str | None
    active: bool
    locked_until: dt.datetime | None
    created_at: dt.datetime


class TokenCreate(BaseModel):
    username: str
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)
    expires_at: AwareDatetime | None = None


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class TokenIssued(TokenOut):
    secret: str = Field(description="Shown once; only its hash is kept")


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    user_id: int | None
    username: str
    role: str
    action: str
    subject_type: str
    subject_id: str | None
    purpose: str | None
    detail: dict[str, Any]
    request_id: str | None
    hash: str


class AuditPage(BaseModel):
    total: int
    entries: list[AuditEntryOut]
