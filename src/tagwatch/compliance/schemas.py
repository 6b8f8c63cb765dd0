"""Compliance API input and output."""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class ViolationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    allocation_id: int
    order_id: int | None
    person_id: int | None
    condition_id: int | None
    rule_id: str
    rule_version: str
    rule_set_version: str
    start: dt.datetime
    end: dt.datetime | None
    duration_seconds: float | None
    severity: str
    status: str
    needs_review: bool
    evidence_fixes: list[int]
    evidence_events: list[int]
    withdrawn_at: dt.datetime | None
    first_found_at: dt.datetime
    evaluated_at: dt.datetime


class ViolationPage(BaseModel):
    total: int
    items: list[ViolationOut]


class _Period(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _end_after_start(self) -> _Period:
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


class AbsenceIn(_Period):
    order_id: int


class SuspensionIn(_Period):
    order_id: int
    condition_id: int


class AbsenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: int
    start: dt.datetime
    end: dt.datetime
    reason: str
    recorded_by: str
    recorded_at: dt.datetime
    cancelled_at: dt.datetime | None
    cancelled_by: str | None


class SuspensionOut(AbsenceOut):
    condition_id: int


class CurfewHours(BaseModel):
    scheduled_hours: float
    kept_hours: float
    absent_hours: float
    excused_hours: float


class ComplianceSummary(BaseModel):
    person_id: int
    start: dt.datetime
    end: dt.datetime
    curfew: CurfewHours
    # London calendar date -> rule id -> violations starting that day (confirmed only).
    violations_by_day: dict[str, dict[str, int]]
    possible_by_rule: dict[str, int]
    confirmed_by_rule: dict[str, int]
