"""Telemetry API answers (pydantic)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class FieldErrorOut(BaseModel):
    field: str
    reason: str


class RejectionOut(BaseModel):
    position: int
    quarantine_id: int
    errors: list[FieldErrorOut]


class Counts(BaseModel):
    received: int
    accepted: int
    duplicate: int
    rejected: int
    unallocated: int
    implausible: int


class IngestAnswer(Counts):
    """What happened to a batch: `accepted` records were stored new (`unallocated` and
    `implausible` count some of them); `position` is the line (NDJSON, 1-based) or index
    (JSON array, 0-based) of a rejected record."""

    rejections: list[RejectionOut]


class StillRejected(BaseModel):
    quarantine_id: int
    errors: list[FieldErrorOut]


class ReplayAnswer(Counts):
    released: list[int]
    still_rejected: list[StillRejected]


class QuarantinedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    origin: str
    position: int | None
    raw_text: str
    csv_header: str | None
    errors: list[FieldErrorOut]
    received_at: dt.datetime
    status: str
    corrected_text: str | None
    replay_count: int
    last_replayed_at: dt.datetime | None
    released_key: str | None


class UnallocatedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_serial: str
    fixes: int
    events: int
    records: int
    first_t: dt.datetime
    last_t: dt.datetime
