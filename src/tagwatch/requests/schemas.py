"""Data request shapes for the JSON API."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class DataRequestIn(BaseModel):
    identifier: str = Field(description="The person's tagwatch reference, CRN or PNC, exactly")
    start: AwareDatetime
    end: AwareDatetime
    purpose: str
    lawful_basis: str = Field(description="crime, safeguarding, court_order or supervision")
    crime_reference: str | None = None


class DecisionIn(BaseModel):
    reason: str


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    format: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    deleted_at: dt.datetime | None


class DataRequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    requester_username: str
    requester_name: str
    requester_force_code: str | None
    person_ref: str
    period_start: dt.datetime
    period_end: dt.datetime
    purpose: str
    lawful_basis: str
    crime_reference: str | None
    status: str
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    decision_reason: str | None
    fulfilled_at: dt.datetime | None
    first_downloaded_at: dt.datetime | None
    expires_at: dt.datetime | None
    expired_at: dt.datetime | None
    fix_count: int | None
    files: list[FileOut] = []


class SpreadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    count: int
    median_s: float | None
    p95_s: float | None


class TurnaroundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    requests: int
    decided: int
    approved: int
    request_to_decision: SpreadOut
    approval_to_files: SpreadOut
    request_to_files: SpreadOut
    request_to_first_download: SpreadOut
