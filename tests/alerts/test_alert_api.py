"""The alerts API: scoped lists, the officer's actions, reports and their guards."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tagwatch.access.service import principal_for
from tagwatch.alerts import service
from tagwatch.alerts.models import Alert
from tagwatch.db.base import utcnow
from tagwatch.settings import Settings

SETTINGS = Settings(notifiers="outbox")


@pytest.fixture
def team(make_user):
    return {
        "officer": principal_for(make_user("a.officer", "probation_practitioner", team="A")),
        "colleague": principal_for(make_user("b.officer", "probation_practitioner", team="B")),
        "manager": principal_for(make_user("m.manager", "probation_manager")),
        "elsewhere": principal_for(make_user("x.manager", "probation_manager", unit="N99-ELSE")),
    }


def _raise(db: Session, violation_id: int, now: dt.datetime | None = None) -> Alert:
    [alert] = service.sync_violations(
        db, [violation_id], evaluated_at=utcnow(), settings=SETTINGS, now=now or utcnow()
    )
    db.flush()
    return alert


# `make_client` routes every client of the app as the latest caller: each is used at once.


def test_a_practitioner_sees_only_their_caseloads_alerts(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    mine = _raise(db, make_violation(make_case(officer="a.officer")).id)
    _raise(db, make_violation(make_case(officer="b.officer")).id)

    officer: TestClient = make_client(team["officer"])
    page = officer.get("/api/v1/alerts").json()
    assert page["total"] == 1 and [a["id"] for a in page["items"]] == [mine.id]

    manager_page = make_client(team["manager"]).get("/api/v1/alerts").json()
    assert manager_page["total"] == 2
    assert make_client(team["elsewhere"]).get("/api/v1/alerts").json()["total"] == 0


def test_reading_an_alert_shows_its_history_and_deliveries(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    alert = _raise(db, make_violation(make_case()).id)
    officer = make_client(team["officer"])

    body = officer.get(f"/api/v1/alerts/{alert.id}").json()
    assert body["violation_type"] == "curfew.absence.gps"
    assert [h["action"] for h in body["history"]] == ["raised", "notified"]
    assert [(n["channel"], n["status"]) for n in body["notifications"]] == [("outbox", "sent")]

    assert officer.get("/api/v1/alerts/999999").status_code == 404
    assert make_client(team["colleague"]).get(f"/api/v1/alerts/{alert.id}").status_code == 404


def test_acknowledge_then_record_an_outcome(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    alert = _raise(db, make_violation(make_case()).id)
    officer = make_client(team["officer"])

    early = officer.post(
        f"/api/v1/alerts/{alert.id}/outcome", json={"outcome": "warning", "note": "late"}
    )
    assert early.status_code == 409 and "acknowledge" in early.json()["detail"]

    acknowledged = officer.post(f"/api/v1/alerts/{alert.id}/acknowledge")
    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"] == "a.officer"
    assert officer.post(f"/api/v1/alerts/{alert.id}/acknowledge").status_code == 409

    bad = officer.post(
        f"/api/v1/alerts/{alert.id}/outcome", json={"outcome": "caution", "note": "x"}
    )
    assert bad.status_code == 422 and "outcome" in str(bad.json()["detail"])
    blank = officer.post(
        f"/api/v1/alerts/{alert.id}/outcome", json={"outcome": "warning", "note": "   "}
    )
    assert blank.status_code == 422 and "note" in blank.json()["detail"]

    done = officer.post(
        f"/api/v1/alerts/{alert.id}/outcome",
        json={"outcome": "breach_proceedings", "note": "third absence this month"},
    )
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["outcome"]) == ("resolved", "breach_proceedings")


def test_tamper_review_gate_through_the_api(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    alert = _raise(db, make_violation(make_case(), rule_id="tamper.strap").id)
    officer = make_client(team["officer"])
    officer.post(f"/api/v1/alerts/{alert.id}/acknowledge")

    refused = officer.post(
        f"/api/v1/alerts/{alert.id}/outcome", json={"outcome": "recall", "note": "strap cut"}
    )
    assert refused.status_code == 409 and "tamper review" in refused.json()["detail"]
    # Practitioners do not hold alert:review_tamper.
    review = {"finding": "confirmed_tamper", "note": "strap cut with a blade, seen at visit"}
    forbidden = officer.post(f"/api/v1/alerts/{alert.id}/tamper-review", json=review)
    assert forbidden.status_code == 403

    reviewed = make_client(team["manager"]).post(
        f"/api/v1/alerts/{alert.id}/tamper-review", json=review
    )
    assert reviewed.status_code == 200 and reviewed.json()["tamper_finding"] == "confirmed_tamper"
    recalled = make_client(team["officer"]).post(
        f"/api/v1/alerts/{alert.id}/outcome", json={"outcome": "recall", "note": "strap cut"}
    )
    assert recalled.status_code == 200 and recalled.json()["outcome"] == "recall"


def test_reports_need_alert_report_and_are_scoped(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    long_ago = utcnow() - dt.timedelta(hours=30)
    overdue = _raise(db, make_violation(make_case()).id, now=long_ago)
    _raise(db, make_violation(make_case()).id)
    service.escalate_due(db, settings=SETTINGS, now=utcnow())
    db.flush()

    assert make_client(team["officer"]).get("/api/v1/alerts/overdue").status_code == 403
    assert make_client(team["officer"]).get("/api/v1/alerts/escalated").status_code == 403
    manager = make_client(team["manager"])
    assert [a["id"] for a in manager.get("/api/v1/alerts/overdue").json()] == [overdue.id]
    assert [a["id"] for a in manager.get("/api/v1/alerts/escalated").json()] == [overdue.id]
    stages = {s["stage"]: s for s in manager.get("/api/v1/alerts/latency").json()}
    assert stages["raised_to_notified"]["count"] == 2
    assert stages["raised_to_notified"]["p95_seconds"] == 0
    assert make_client(team["elsewhere"]).get("/api/v1/alerts/overdue").json() == []


def test_the_outbox_lists_the_callers_own_messages(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    alert = _raise(db, make_violation(make_case(officer="a.officer")).id)
    officer = make_client(team["officer"])
    [message] = officer.get("/api/v1/alerts/outbox").json()
    assert message["alert_id"] == alert.id and message["read_at"] is None
    colleague = make_client(team["colleague"])
    assert colleague.get("/api/v1/alerts/outbox").json() == []
    assert colleague.post(f"/api/v1/alerts/outbox/{message['id']}/read").status_code == 404

    read = make_client(team["officer"]).post(f"/api/v1/alerts/outbox/{message['id']}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert make_client(team["officer"]).get("/api/v1/alerts/outbox?unread=true").json() == []


def test_list_filters(db: Session, make_case, make_violation, make_client, team) -> None:
    first = _raise(db, make_violation(make_case()).id)
    second = _raise(db, make_violation(make_case()).id)
    service.acknowledge(db, team["officer"], second.id, utcnow())
    db.flush()
    officer = make_client(team["officer"])
    assert [a["id"] for a in officer.get("/api/v1/alerts?status=open").json()["items"]] == [
        first.id
    ]
    assert officer.get("/api/v1/alerts?status=nonsense").status_code == 422
    assert officer.get("/api/v1/alerts?kind=awaiting_fitting").json()["total"] == 0


def test_the_portal_outcome_form_shows_a_missing_note_as_an_error(
    db: Session, make_case, make_violation, make_client, team
) -> None:
    alert = _raise(db, make_violation(make_case()).id)
    officer = make_client(team["officer"])
    assert officer.post(f"/alerts/{alert.id}/acknowledge", follow_redirects=False).is_redirect

    blank = officer.post(f"/alerts/{alert.id}/outcome", data={"outcome": "warning", "note": "  "})
    assert blank.status_code == 400  # the form again, with the refusal in its error summary
    assert "govuk-error-summary" in blank.text and "must say why" in blank.text
    db.refresh(alert)
    assert alert.outcome is None
