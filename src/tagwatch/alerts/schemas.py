"""API shapes for alerts, their history, notifications and reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tagwatch.alerts.models import Outcome, TamperFinding


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    violation_id: int | None
    order_id: int | None
    allocation_id: int | None
    person_id: int | None
    violation_type: str
    severity: str
    summary: str
    status: str
    needs_tamper_review: bool
    responsible_officer: str | None
    delivery_unit_code: str | None
    event_at: dt.datetime
    received_at: dt.datetime
    evaluated_at: dt.datetime
    raised_at: dt.datetime
    notified_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    escalated_at: dt.datetime | None
    escalated_to: list[str]
    tamper_finding: str | None
    tamper_review_note: str | None
    tamper_reviewed_at: dt.datetime | None
    tamper_reviewed_by: str | None
    outcome_due_at: dt.datetime
    outcome: str | None
    outcome_note: str | None
    outcome_at: dt.datetime | None
    outcome_by: str | None
    violation_ended_at: dt.datetime | None
    violation_withdrawn_at: dt.datetime | None


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor: str
    action: str
    detail: dict[str, Any]


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    purpose: str
    channel: str
    recipient: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    sent_at: dt.datetime | None


class AlertDetail(AlertOut):
    history: list[HistoryOut]
    notifications: list[NotificationOut]


class AlertPage(BaseModel):
    total: int
    items: list[AlertOut]


class TamperReviewIn(BaseModel):
    finding: TamperFinding
    note: str = Field(min_length=1, max_length=5000)


class OutcomeIn(BaseModel):
    outcome: Outcome
    note: str = Field(min_length=1, max_length=5000)


class LatencyOut(BaseModel):
    stage: str
    count: int
    p50_seconds: float | None
    p95_seconds: float | None


class OutboxMessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    alert_id: int
    subject: str
    body: str
    created_at: dt.datetime
    read_at: dt.datetime | None
