"""Compliance service and API on the real database: clock rules, DST nights, excusals,
the summary and the guards."""

from __future__ import annotations

import datetime as dt

from compliance_cases import HOME_BNG, ZONE_BNG, feed, gps, make_case, status
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.background import PeriodicTask
from tagwatch.compliance import periodic, repository, service
from tagwatch.compliance.summary import compliance_summary

UTC = dt.UTC
AWAY = (HOME_BNG[0] + 400, HOME_BNG[1] + 300)
HOME = (HOME_BNG[0] + 5, HOME_BNG[1] + 5)
ZONE_CENTRE = (ZONE_BNG[0][0] + 150, ZONE_BNG[0][1] + 150)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def walk(serial: str, start: dt.datetime, minutes: int, place: tuple[float, float]) -> list:
    return [gps(serial, start + dt.timedelta(minutes=m), *place) for m in range(minutes)]


def rules(db: Session, allocation_id: int, prefix: str = "") -> list:
    return [v for v in service.standing(db, allocation_id) if v.rule_id.startswith(prefix)]


def test_periodic_task_fires_no_presence_when_the_curfew_starts_without_records(db: Session):
    case = make_case(db, at(20, 12))
    feed(db, walk(case.serial, at(20, 17), 30, HOME), at(20, 17, 30))
    [task] = periodic.TASKS
    assert isinstance(task, PeriodicTask)
    task.run(db, at(20, 19, 10))  # within the grace: nothing yet
    assert rules(db, case.allocation_id, "curfew.no_presence") == []
    task.run(db, at(20, 19, 20))
    [fired] = rules(db, case.allocation_id, "curfew.no_presence")
    assert (fired.start, fired.end, fired.status) == (at(20, 19), None, "confirmed")
    # Loss of communication was found by the same clock, from the last record (and the
    # silence between fitting and the first record is one too).
    silences = rules(db, case.allocation_id, "device.loss_of_communication")
    assert [(v.start, v.end) for v in silences] == [
        (at(20, 12), at(20, 17)),
        (at(20, 17, 29), None),
    ]
    # The person is seen at home later: the finding ends there.
    feed(db, walk(case.serial, at(20, 20), 3, HOME), at(20, 20, 5))
    [ended] = rules(db, case.allocation_id, "curfew.no_presence")
    assert ended.id == fired.id and ended.end == at(20, 20)


def test_an_allocation_recorded_late_is_not_judged_for_the_time_before_it_was_watched(
    db: Session,
):
    # An order imported from a legacy system: fitted weeks ago, recorded today, no data yet.
    case = make_case(db, at(1, 12), recorded_at=at(20, 12))
    service.evaluate_and_publish(db, {case.allocation_id: at(1, 12)}, at(20, 12))
    [task] = periodic.TASKS
    task.run(db, at(20, 12, 5))
    assert rules(db, case.allocation_id) == []
    # From the moment it is watched, the clock rules apply as usual.
    task.run(db, at(20, 19, 20))
    assert [v.start for v in rules(db, case.allocation_id, "curfew.no_presence")] == [at(20, 19)]


def test_watching_begins_at_the_first_record_when_it_precedes_the_recording(db: Session):
    case = make_case(db, at(1, 12), recorded_at=at(20, 12))
    feed(db, walk(case.serial, at(19, 17), 30, HOME), at(20, 12, 1))
    [task] = periodic.TASKS
    task.run(db, at(20, 12, 5))
    silences = rules(db, case.allocation_id, "device.loss_of_communication")
    assert [(v.start, v.end) for v in silences] == [(at(19, 17, 29), None)]


def test_curfew_on_the_night_clocks_go_forward_ends_at_seven_local(db: Session):
    case = make_case(db, at(28, 12))
    # 28 March 2026 19:00 GMT to 29 March 07:00 BST = 06:00 UTC.
    evening = walk(case.serial, at(28, 18, 50), 20, HOME)
    morning = walk(case.serial, at(29, 5, 40), 40, AWAY)
    feed(db, evening + morning, at(29, 12))
    [absence] = rules(db, case.allocation_id, "curfew.absence")
    assert (absence.start, absence.end) == (at(29, 5, 40), at(29, 6))


def test_curfew_on_the_night_clocks_go_back_runs_an_hour_longer(db: Session):
    case = make_case(db, at(24, 12, month=10))
    # 24 October 2026 19:00 BST = 18:00 UTC to 25 October 07:00 GMT = 07:00 UTC.
    evening = walk(case.serial, at(24, 17, 50, 10), 20, HOME)
    morning = walk(case.serial, at(25, 6, 20, 10), 60, AWAY)
    feed(db, evening + morning, at(25, 12, month=10))
    [absence] = rules(db, case.allocation_id, "curfew.absence")
    assert (absence.start, absence.end) == (at(25, 6, 20, 10), at(25, 7, month=10))


def test_tamper_violations_are_marked_for_review(db: Session):
    case = make_case(db, at(20, 12))
    feed(
        db,
        [
            status(case.serial, at(20, 13), strap="open"),
            status(case.serial, at(20, 14), strap="ok"),
        ],
        at(20, 15),
    )
    [tamper] = rules(db, case.allocation_id, "tamper.")
    assert tamper.needs_review and tamper.evidence_events and tamper.duration_seconds == 3600


def test_authorised_absence_withdraws_and_cancelling_restores(client: TestClient, db: Session):
    # The API evaluates at the wall clock: a removed device keeps that to one night.
    case = make_case(db, at(20, 12), removed_at=at(21, 12))
    feed(
        db,
        walk(case.serial, at(20, 18, 30), 40, HOME) + walk(case.serial, at(20, 19, 10), 60, AWAY),
        at(20, 21),
    )
    [absence] = rules(db, case.allocation_id, "curfew.absence")
    body = {
        "order_id": case.order_id,
        "start": "2026-03-20T19:00:00Z",
        "end": "2026-03-20T22:00:00Z",
        "reason": "Hospital appointment",
    }
    response = client.post("/api/v1/absences", json=body)
    assert response.status_code == 201, response.text
    assert rules(db, case.allocation_id, "curfew.absence") == []
    db.refresh(absence)
    assert absence.withdrawn_at is not None
    listed = client.get("/api/v1/absences", params={"order_id": case.order_id}).json()
    assert [a["reason"] for a in listed] == ["Hospital appointment"]
    cancelled = client.post(f"/api/v1/absences/{listed[0]['id']}/cancel")
    assert cancelled.status_code == 200
    [again] = rules(db, case.allocation_id, "curfew.absence")
    assert again.id == absence.id


def test_zone_suspension_needs_a_zone_of_the_order(client: TestClient, db: Session):
    case = make_case(db, at(20, 12), removed_at=at(21, 12))
    body = {
        "order_id": case.order_id,
        "condition_id": case.curfew_id,
        "start": "2026-03-20T19:00:00Z",
        "end": "2026-03-20T22:00:00Z",
        "reason": "Attending court",
    }
    response = client.post("/api/v1/zone-suspensions", json=body)
    assert response.status_code == 422
    assert "condition_id" in response.text
    body["condition_id"] = case.zone_id
    assert client.post("/api/v1/zone-suspensions", json=body).status_code == 201
    bad = {**body, "end": "2026-03-20T18:00:00Z"}
    assert client.post("/api/v1/zone-suspensions", json=bad).status_code == 422
    missing = {**body, "order_id": 999_999}
    assert "order_id" in client.post("/api/v1/zone-suspensions", json=missing).text


def test_violations_api_filters_and_guards(client: TestClient, make_client, db: Session):
    case = make_case(db, at(20, 12))
    feed(
        db,
        [status(case.serial, at(20, 13), strap="open"), *walk(case.serial, at(20, 13), 5, HOME)],
        at(20, 14),
    )
    everything = client.get("/api/v1/violations", params={"person_id": case.person_id}).json()
    assert everything["total"] >= 1
    tamper = client.get(
        "/api/v1/violations", params={"person_id": case.person_id, "rule": "tamper.strap"}
    ).json()
    assert [v["rule_id"] for v in tamper["items"]] == ["tamper.strap"]
    one = client.get(f"/api/v1/violations/{tamper['items'][0]['id']}").json()
    assert one["needs_review"] is True
    assert client.get("/api/v1/violations", params={"rule": "nonsense"}).status_code == 422
    assert client.get("/api/v1/violations/999999").status_code == 404
    outsider = make_client(reader_without("compliance:read"))
    assert outsider.get("/api/v1/violations").status_code == 403
    writer_missing = make_client(reader_without("compliance:write"))
    assert writer_missing.post("/api/v1/absences", json={}).status_code == 403


def reader_without(permission: str) -> Principal:
    return Principal(
        user_id=None,
        username="reader",
        display_name="Reader",
        roles=frozenset({"test"}),
        permissions=frozenset(PERMISSIONS) - {permission},
    )


def _fifty_minutes_out_in_curfew(serial: str) -> list:
    """Home from 18:30, out 19:10 to 20:00 (the curfew begins at 19:00), home again."""
    return (
        walk(serial, at(20, 18, 30), 40, HOME)
        + walk(serial, at(20, 19, 10), 50, AWAY)
        + walk(serial, at(20, 20), 5, HOME)
    )


def test_summary_counts_kept_and_absent_curfew_hours(db: Session):
    case = make_case(db, at(20, 12))
    feed(db, _fifty_minutes_out_in_curfew(case.serial), at(20, 21))
    summary = compliance_summary(db, case.person_id, at(20, 12), at(21, 12))
    assert summary.curfew.scheduled_hours == 12.0
    assert summary.curfew.absent_hours == round(50 / 60, 3)
    assert summary.curfew.kept_hours == round(12 - 50 / 60, 3)
    assert summary.confirmed_by_rule["curfew.absence.gps"] == 1
    assert summary.violations_by_day["2026-03-20"]["curfew.absence.gps"] == 1


def test_a_persons_violations_as_rows_are_the_querys(db: Session):
    # The person's page reads them once as rows, for its summary and its timeline.
    case = make_case(db, at(20, 12))
    in_the_zone = walk(case.serial, at(21, 9), 10, ZONE_CENTRE)
    feed(db, _fifty_minutes_out_in_curfew(case.serial) + in_the_zone, at(21, 10))
    for since in (at(20, 12), at(20, 19, 30), at(20, 21), at(21, 9, 30)):
        query = repository.violation_query(person_id=case.person_id, start=since)
        objects = repository.find_violations(db, query, limit=1000, offset=0)
        rows = repository.person_violations_since(db, case.person_id, since)
        assert len(objects) >= (1 if since < at(21, 9) else 0)
        assert rows == [
            (v.id, v.rule_id, v.status, v.condition_key, v.start, v.end, v.evaluated_at)
            for v in objects
        ]
    summary = compliance_summary(db, case.person_id, at(20, 12), at(21, 12))
    given = repository.person_violations_since(db, case.person_id, at(20, 12))
    assert compliance_summary(db, case.person_id, at(20, 12), at(21, 12), given) == summary


def test_order_change_and_new_allocation_re_derive(db: Session):
    from tagwatch.cases.events import AllocationRecorded, OrderChanged
    from tagwatch.cases.models import Allocation, Condition
    from tagwatch.events import publish

    case = make_case(db, at(20, 12))
    zone = ZONE_CENTRE
    feed(db, walk(case.serial, at(20, 13), 10, zone), at(20, 14))
    assert [v.rule_id for v in rules(db, case.allocation_id, "zone.")] == ["zone.exclusion.entry"]
    # A variation removes the exclusion zone: the entry no longer stands.
    db.delete(db.get(Condition, case.zone_id))
    db.flush()
    publish(db, OrderChanged(order_id=case.order_id, version=2))
    assert rules(db, case.allocation_id, "zone.") == []
    # Removal recorded before the records: nothing is owed after it.
    allocation = db.get(Allocation, case.allocation_id)
    allocation.removed_at = at(20, 13)
    db.flush()
    publish(
        db,
        AllocationRecorded(case.allocation_id, case.order_id, case.serial, at(20, 12), at(20, 13)),
    )
    assert [(v.start, v.end) for v in rules(db, case.allocation_id, "device.")] == [
        (at(20, 12), at(20, 13))
    ]
