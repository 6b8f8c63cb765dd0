"""The alerts inbox: what to act on, acknowledging, tamper review and recording outcomes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.alerts import service as alerts
from tagwatch.alerts.models import Alert, AlertStatus, Outcome, TamperFinding
from tagwatch.alerts.repository import AlertFilter
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession, ReadSession
from tagwatch.web.portal import people
from tagwatch.web.portal.people import person_labels
from tagwatch.web.portal.render import render

router = APIRouter(prefix="/alerts", include_in_schema=False)

VIEWS: dict[str, tuple[str, AlertFilter]] = {
    "open": ("Not yet acknowledged", AlertFilter(status=AlertStatus.OPEN)),
    "acknowledged": ("Waiting for an outcome", AlertFilter(status=AlertStatus.ACKNOWLEDGED)),
    "escalated": ("Escalated", AlertFilter(escalated=True)),
    "resolved": ("Outcome recorded", AlertFilter(status=AlertStatus.RESOLVED)),
}
STATUS_COLOURS = {"open": "red", "acknowledged": "yellow", "resolved": "green", "withdrawn": "grey"}
OUTCOME_LABELS = {
    Outcome.NO_ACTION: "No action (reasonable excuse, or nothing to enforce)",
    Outcome.WARNING: "Warning",
    Outcome.BREACH_PROCEEDINGS: "Breach proceedings",
    Outcome.RECALL: "Recall",
}
FINDING_LABELS = {
    TamperFinding.CONFIRMED_TAMPER: "Confirmed tamper",
    TamperFinding.DEVICE_FAULT: "Device fault",
    TamperFinding.INCONCLUSIVE: "Inconclusive",
}


@router.get("", response_class=HTMLResponse)
def inbox(
    request: Request,
    session: ReadSession,
    principal: Principal = require("alert:read"),
    view: str = "open",
) -> Response:
    if view not in VIEWS:
        view = "open"
    label, query = VIEWS[view]
    _total, found = alerts.list_alerts(session, principal, query)
    return render(
        request,
        "portal/alerts.html",
        {
            "title": "Alerts",
            "view": view,
            "view_label": label,
            "views": [(key, text) for key, (text, _) in VIEWS.items()],
            "alerts": found,
            "people": person_labels(
                session, principal, {a.person_id for a in found if a.person_id}
            ),
            "status_colours": STATUS_COLOURS,
        },
    )


def _alert_or_404(session: Session, principal: Principal, alert_id: int) -> Alert:
    try:
        return alerts.get_alert(session, principal, alert_id)
    except alerts.AlertNotFound as missing:
        raise HTTPException(404, str(missing)) from missing


def _outcome_choices(alert: Alert) -> list[Outcome]:
    """Enforcement on a tamper alert needs a confirmed review; otherwise only no action."""
    if alert.needs_tamper_review and alert.tamper_finding != TamperFinding.CONFIRMED_TAMPER:
        return [Outcome.NO_ACTION]
    return list(Outcome)


def _alert_page(
    request: Request,
    session: Session,
    principal: Principal,
    alert: Alert,
    field_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    field_errors = field_errors or {}
    values = values or {}
    reviewed_or_not_tamper = not alert.needs_tamper_review or alert.tamper_finding is not None
    labels = person_labels(session, principal, {alert.person_id} if alert.person_id else set())
    anchors = {
        "finding": "#finding",
        "note": "#tamper-note",
        "outcome": "#outcome",
        "outcome_note": "#outcome-note",
        "alert": "#main-content",
    }
    return render(
        request,
        "portal/alert.html",
        {
            "title": f"Alert {alert.id}",
            "alert": alert,
            "person_label": labels.get(alert.person_id, "") if alert.person_id else "",
            "rule_label": people.rule_label,
            "can_acknowledge": alert.status == AlertStatus.OPEN
            and principal.has("alert:acknowledge"),
            "can_review_tamper": principal.has("alert:review_tamper"),
            "can_record_outcome": alert.status == AlertStatus.ACKNOWLEDGED
            and principal.has("alert:outcome")
            and reviewed_or_not_tamper,
            "outcomes": [
                {
                    "value": o.value,
                    "text": OUTCOME_LABELS[o],
                    "checked": values.get("outcome") == o.value,
                }
                for o in _outcome_choices(alert)
            ],
            "tamper_findings": [
                {"value": f.value, "text": text, "checked": values.get("finding") == f.value}
                for f, text in FINDING_LABELS.items()
            ],
            "field_errors": field_errors,
            "errors": [
                {"text": text, "href": anchors.get(key, "#main-content")}
                for key, text in field_errors.items()
            ],
        },
        status_code=400 if field_errors else 200,
    )


@router.get("/{alert_id}", response_class=HTMLResponse)
def alert_page(
    request: Request,
    alert_id: int,
    session: ReadSession,
    principal: Principal = require("alert:read"),
) -> Response:
    return _alert_page(request, session, principal, _alert_or_404(session, principal, alert_id))


def _back(alert_id: int) -> Response:
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)


@router.post("/{alert_id}/acknowledge")
def acknowledge(
    request: Request,
    alert_id: int,
    session: DbSession,
    principal: Principal = require("alert:acknowledge"),
) -> Response:
    alert = _alert_or_404(session, principal, alert_id)
    try:
        alerts.acknowledge(session, principal, alert_id, utcnow())
    except alerts.AlertStateError as refused:
        return _alert_page(request, session, principal, alert, {"alert": str(refused)})
    return _back(alert_id)


@router.post("/{alert_id}/tamper-review")
def tamper_review(
    request: Request,
    alert_id: int,
    session: DbSession,
    finding: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    principal: Principal = require("alert:review_tamper"),
) -> Response:
    alert = _alert_or_404(session, principal, alert_id)
    values = {"finding": finding}
    if finding not in {f.value for f in TamperFinding}:
        return _alert_page(
            request, session, principal, alert, {"finding": "Select what the review found"}, values
        )
    try:
        alerts.review_tamper(session, principal, alert_id, TamperFinding(finding), note, utcnow())
    except (alerts.AlertStateError, ValueError) as refused:
        return _alert_page(
            request, session, principal, alert, _error_field(str(refused), "note"), values
        )
    return _back(alert_id)


@router.post("/{alert_id}/outcome")
def outcome(
    request: Request,
    alert_id: int,
    session: DbSession,
    outcome: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    principal: Principal = require("alert:outcome"),
) -> Response:
    alert = _alert_or_404(session, principal, alert_id)
    values = {"outcome": outcome}
    if outcome not in {o.value for o in Outcome}:
        return _alert_page(
            request, session, principal, alert, {"outcome": "Select what was decided"}, values
        )
    try:
        alerts.record_outcome(session, principal, alert_id, Outcome(outcome), note, utcnow())
    except (alerts.AlertStateError, ValueError) as refused:
        return _alert_page(
            request, session, principal, alert, _error_field(str(refused), "outcome_note"), values
        )
    return _back(alert_id)


def _error_field(message: str, note_field: str) -> dict[str, str]:
    """The service names the field first (`note: ...`); point the summary at it."""
    field, _, reason = message.partition(": ")
    if field == "note":
        return {note_field: "Enter the reason: " + reason if reason else message}
    if field == "outcome":
        return {"outcome": reason or message}
    return {"alert": message}
