"""JSON API for alerts: list, read, acknowledge, review tamper, record outcome, reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.alerts import repository, service
from tagwatch.alerts.models import Alert, AlertKind, AlertStatus
from tagwatch.alerts.schemas import (
    AlertDetail,
    AlertOut,
    AlertPage,
    LatencyOut,
    OutboxMessageOut,
    OutcomeIn,
    TamperReviewIn,
)
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=AlertPage)
def list_alerts(
    session: DbSession,
    principal: Annotated[Principal, require("alert:read")],
    alert_status: Annotated[AlertStatus | None, Query(alias="status")] = None,
    kind: AlertKind | None = None,
    escalated: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlertPage:
    """Alerts in the caller's scope (a practitioner: their caseload), newest first."""
    query = repository.AlertFilter(
        status=alert_status, kind=kind, escalated=escalated, limit=limit, offset=offset
    )
    total, alerts = service.list_alerts(session, principal, query)
    return AlertPage(total=total, items=[AlertOut.model_validate(a) for a in alerts])


@router.get("/escalated", response_model=list[AlertOut])
def escalated_alerts(
    session: DbSession, principal: Annotated[Principal, require("alert:report")]
) -> list[AlertOut]:
    """Escalated alerts still waiting for an outcome."""
    return [AlertOut.model_validate(a) for a in service.escalated(session, principal)]


@router.get("/overdue", response_model=list[AlertOut])
def overdue_alerts(
    session: DbSession, principal: Annotated[Principal, require("alert:report")]
) -> list[AlertOut]:
    """Alerts with no outcome recorded past their outcome deadline."""
    return [AlertOut.model_validate(a) for a in service.overdue(session, principal, utcnow())]


@router.get("/latency", response_model=list[LatencyOut])
def alert_latency(
    session: DbSession,
    principal: Annotated[Principal, require("alert:report")],
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> list[LatencyOut]:
    """p50 and p95 seconds of each stage from event to acknowledgement."""
    figures = service.latency(session, since=since, until=until)
    return [LatencyOut(stage=stage, **vars(f)) for stage, f in figures.items()]


@router.get("/outbox", response_model=list[OutboxMessageOut])
def my_outbox(
    session: DbSession,
    principal: Annotated[Principal, require("alert:read")],
    unread: bool = False,
) -> list[OutboxMessageOut]:
    """The caller's in-app notifications, newest first."""
    messages = repository.outbox_for(session, principal.username, unread_only=unread)
    return [OutboxMessageOut.model_validate(m) for m in messages]


@router.post("/outbox/{message_id}/read", response_model=OutboxMessageOut)
def mark_read(
    message_id: int, session: DbSession, principal: Annotated[Principal, require("alert:read")]
) -> OutboxMessageOut:
    """Mark one of the caller's in-app messages read."""
    try:
        message = service.mark_read(session, principal, message_id, utcnow())
    except service.AlertNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    return OutboxMessageOut.model_validate(message)


@router.get("/{alert_id}", response_model=AlertDetail)
def read_alert(
    alert_id: int, session: DbSession, principal: Annotated[Principal, require("alert:read")]
) -> AlertDetail:
    return AlertDetail.model_validate(
        _found(lambda: service.get_alert(session, principal, alert_id))
    )


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(
    alert_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("alert:acknowledge")],
) -> AlertOut:
    alert = _found(lambda: service.acknowledge(session, principal, alert_id, utcnow()))
    return AlertOut.model_validate(alert)


@router.post("/{alert_id}/tamper-review", response_model=AlertOut)
def review_tamper(
    alert_id: int,
    body: TamperReviewIn,
    session: DbSession,
    principal: Annotated[Principal, require("alert:review_tamper")],
) -> AlertOut:
    alert = _found(
        lambda: service.review_tamper(
            session, principal, alert_id, body.finding, body.note, utcnow()
        )
    )
    return AlertOut.model_validate(alert)


@router.post("/{alert_id}/outcome", response_model=AlertOut)
def record_outcome(
    alert_id: int,
    body: OutcomeIn,
    session: DbSession,
    principal: Annotated[Principal, require("alert:outcome")],
) -> AlertOut:
    alert = _found(
        lambda: service.record_outcome(
            session, principal, alert_id, body.outcome, body.note, utcnow()
        )
    )
    return AlertOut.model_validate(alert)


def _found(action: Callable[[], Alert]) -> Alert:
    """Run a use case, turning its refusals into HTTP answers."""
    try:
        return action()
    except service.AlertNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except service.AlertStateError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
