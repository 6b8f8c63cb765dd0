"""The data request lifecycle through the service: ask, decide, fulfil, download, expire."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable

import pytest
from defusedxml import ElementTree
from request_cases import APPROVER, POLICE, T0, caller
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.cases.models import Allocation, Person
from tagwatch.requests import service
from tagwatch.requests.models import DataRequestFile, RequestStatus
from tagwatch.requests.periodic import TASKS

NOW = T0 + dt.timedelta(days=10)
OFFICER = caller("pc_smith", POLICE, force_code="WYP")
OTHER_FORCE = caller("pc_jones", POLICE, force_code="MPS")
INSPECTOR = caller("insp_brown", APPROVER)


def _ask(
    db: Session,
    person: Person,
    *,
    who: object = OFFICER,
    start: dt.datetime = T0,
    end: dt.datetime = T0 + dt.timedelta(days=1),
    basis: str = "crime",
    crime_reference: str | None = "13/123456/26",
    identifier: str | None = None,
) -> object:
    return service.create_request(
        db,
        who,  # type: ignore[arg-type]
        service.NewRequest(
            identifier=identifier or person.pnc or "",
            start=start,
            end=end,
            purpose="Burglary investigation: was the suspect near the scene?",
            lawful_basis=basis,
            crime_reference=crime_reference,
        ),
        now=NOW,
    )


def _actions(db: Session, request_id: int) -> list[str]:
    return list(
        db.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.subject_type == "data_request")
            .where(AuditEntry.subject_id == str(request_id))
            .order_by(AuditEntry.id)
        )
    )


def test_whole_lifecycle_files_match_the_fixes_exactly(
    db: Session, make_wearer: Callable[..., Allocation], add_fixes: Callable[..., None]
) -> None:
    wearer = make_wearer()
    other = make_wearer()
    # Before, inside (with two implausible fixes) and after the period; another person inside.
    add_fixes(wearer, [-5, -1, 0, 1, 2, 30, 31, 600, 1439, 1440, 1441, 1500], frozenset({1, 31}))
    add_fixes(other, [0, 5, 10])
    person = db.get(Person, wearer.person_id)
    assert person is not None

    request = _ask(db, person)
    assert request.status == RequestStatus.PENDING  # type: ignore[attr-defined]
    with pytest.raises(service.FileGone):
        service.download(db, OFFICER, request.id, "csv", now=NOW)  # type: ignore[attr-defined]

    approved = service.approve(db, INSPECTOR, request.id, "Proportionate", now=NOW)  # type: ignore[attr-defined]
    assert approved.status == RequestStatus.APPROVED
    assert approved.fulfilled_at is not None and approved.fulfilled_at >= NOW
    assert approved.expires_at == NOW + dt.timedelta(days=28)
    # Inside [T0, T0+1 day]: 0, 2, 30, 600, 1439, 1440 (1 and 31 are implausible).
    assert approved.fix_count == 6

    text = service.download(db, OFFICER, approved.id, "csv", now=NOW).content
    assert text is not None
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    assert len(rows) == 6
    assert rows[0]["time"] == "2026-11-02T00:00:00Z"
    assert rows[-1]["time"] == "2026-11-03T00:00:00Z"
    assert {r["person_ref"] for r in rows} == {person.ref}

    geojson = json.loads(service.download(db, OFFICER, approved.id, "geojson", now=NOW).content)  # type: ignore[arg-type]
    fixes = [f for f in geojson["features"] if f["properties"]["kind"] == "fix"]
    assert [f["properties"]["time"] for f in fixes] == [r["time"] for r in rows]

    kml_file = service.download(db, OFFICER, approved.id, "kml", now=NOW)
    kml = ElementTree.fromstring(kml_file.content)
    assert len(list(kml.iter("{http://www.opengis.net/kml/2.2}Point"))) >= 6
    pdf = service.download(db, OFFICER, approved.id, "pdf", now=NOW)
    assert pdf.content is not None and pdf.content.startswith(b"%PDF")
    for file in approved.files:
        stored = db.scalar(select(DataRequestFile).where(DataRequestFile.id == file.id))
        assert stored is not None
        assert hashlib.sha256(stored.content or b"").hexdigest() == stored.sha256
    assert approved.first_downloaded_at == NOW

    assert _actions(db, approved.id) == [
        "request.created",
        "request.approved",
        "request.fulfilled",
        "request.downloaded",
        "request.downloaded",
        "request.downloaded",
        "request.downloaded",
    ]
    lookup = db.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "request.person_lookup")
        .order_by(AuditEntry.id.desc())
    )
    assert lookup is not None and lookup.detail["identifier"] == person.pnc

    # Still there the moment before expiry; gone (and refused) from it, via the periodic task.
    expiry = NOW + dt.timedelta(days=28)
    assert service.expire_due(db, expiry - dt.timedelta(seconds=1)) == 0
    assert TASKS[0].run(db, expiry) == 1
    assert approved.status == RequestStatus.EXPIRED
    db.expire_all()
    contents = db.scalars(
        select(DataRequestFile.content).where(DataRequestFile.request_id == approved.id)
    ).all()
    assert len(contents) == 4 and all(c is None for c in contents)
    with pytest.raises(service.FileGone):
        service.download(db, OFFICER, approved.id, "csv", now=expiry)
    assert _actions(db, approved.id)[-1] == "request.expired"


def test_download_is_refused_after_expiry_even_before_the_task_runs(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    request = _ask(db, person)  # type: ignore[arg-type]
    service.approve(db, INSPECTOR, request.id, "ok", now=NOW)  # type: ignore[attr-defined]
    later = NOW + dt.timedelta(days=28)
    with pytest.raises(service.FileGone):
        service.download(db, OFFICER, request.id, "pdf", now=later)  # type: ignore[attr-defined]


def test_refusal_makes_no_files_and_is_audited(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    request = _ask(db, person)  # type: ignore[arg-type]
    with pytest.raises(service.RequestError) as no_reason:
        service.refuse(db, INSPECTOR, request.id, "  ", now=NOW)  # type: ignore[attr-defined]
    assert "reason" in no_reason.value.errors
    refused = service.refuse(db, INSPECTOR, request.id, "Not necessary", now=NOW)  # type: ignore[attr-defined]
    assert refused.status == RequestStatus.REFUSED and refused.files == []
    with pytest.raises(service.FileGone):
        service.download(db, OFFICER, refused.id, "csv", now=NOW)
    with pytest.raises(service.RequestError):
        service.approve(db, INSPECTOR, refused.id, "changed my mind", now=NOW)
    assert _actions(db, refused.id) == ["request.created", "request.refused"]


def test_the_requester_cannot_approve_their_own_request(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    both = caller("sgt_green", POLICE | {"request:approve"}, force_code="WYP")
    request = _ask(db, person, who=both)  # type: ignore[arg-type]
    with pytest.raises(service.RequestError) as error:
        service.approve(db, both, request.id, "mine", now=NOW)  # type: ignore[attr-defined]
    assert "decision" in error.value.errors
    assert request.status == RequestStatus.PENDING  # type: ignore[attr-defined]


def test_police_see_only_their_own_requests_and_another_force_is_refused(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    request = _ask(db, person)  # type: ignore[arg-type]
    colleague = caller("pc_white", POLICE, force_code="WYP")
    for outsider in (OTHER_FORCE, colleague):
        with pytest.raises(service.RequestNotFound):
            service.get_request(db, outsider, request.id)  # type: ignore[attr-defined]
        assert service.list_requests(db, outsider) == []
    other_force_approver = caller("insp_grey", APPROVER, force_code="MPS")
    with pytest.raises(service.RequestNotFound):
        service.approve(db, other_force_approver, request.id, "ok", now=NOW)  # type: ignore[attr-defined]
    service.approve(db, INSPECTOR, request.id, "ok", now=NOW)  # type: ignore[attr-defined]
    # The approver sees the request but the files are the requester's alone.
    with pytest.raises(service.RequestNotFound):
        service.download(db, INSPECTOR, request.id, "csv", now=NOW)  # type: ignore[attr-defined]
    assert [r.id for r in service.list_requests(db, OFFICER)] == [request.id]  # type: ignore[attr-defined]


def test_police_find_people_only_by_exact_identifier(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    assert person is not None
    for identifier in (person.ref, person.crn, person.pnc.lower()):  # type: ignore[union-attr]
        assert _ask(db, person, identifier=identifier).person_id == person.id  # type: ignore[attr-defined]
    with pytest.raises(service.RequestError) as error:
        _ask(db, person, identifier=person.ref[:-1])
    assert "identifier" in error.value.errors
    restricted = db.get(Person, make_wearer(restricted=True).person_id)
    with pytest.raises(service.RequestError):
        _ask(db, restricted, identifier=restricted.ref)  # type: ignore[union-attr, arg-type]
    misses = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "request.person_lookup")
    ).all()
    assert sum(1 for m in misses if not m.detail["found"]) == 2


def test_the_period_is_capped_and_checked(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    week = dt.timedelta(days=7)
    assert _ask(db, person, end=T0 + week).id  # type: ignore[attr-defined, arg-type]
    cases = {
        "end": [
            dict(end=T0 + week + dt.timedelta(seconds=1)),
            dict(end=T0),
            dict(start=NOW, end=NOW + dt.timedelta(hours=1)),
        ],
        "crime_reference": [dict(crime_reference=None)],
        "lawful_basis": [dict(basis="curiosity")],
    }
    for field, variants in cases.items():
        for variant in variants:
            with pytest.raises(service.RequestError) as error:
                _ask(db, person, **variant)  # type: ignore[arg-type]
            assert field in error.value.errors, variant
    # Only police need a crime reference with the crime basis.
    practitioner = caller("po_black")
    assert _ask(db, person, who=practitioner, crime_reference=None).id  # type: ignore[attr-defined, arg-type]


def test_turnaround_reports_median_and_p95(
    db: Session, make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    ids = []
    for minutes in (10, 20, 30):
        request = _ask(db, person)  # type: ignore[arg-type]
        service.approve(db, INSPECTOR, request.id, "ok", now=NOW + dt.timedelta(minutes=minutes))  # type: ignore[attr-defined]
        ids.append(request.id)  # type: ignore[attr-defined]
    service.download(db, OFFICER, ids[0], "csv", now=NOW + dt.timedelta(hours=1))
    found = service.turnaround(db, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1))
    assert (found.requests, found.decided, found.approved) == (3, 3, 3)
    assert found.request_to_decision.median_s == 1200.0
    assert found.request_to_decision.p95_s == pytest.approx(1740.0)
    assert found.approval_to_files.count == 3 and (found.approval_to_files.p95_s or 0) >= 0
    assert found.request_to_first_download.median_s == 3600.0
    assert (
        service.turnaround(db, NOW + dt.timedelta(hours=1), NOW + dt.timedelta(hours=2)).requests
        == 0
    )


def test_the_periodic_task_is_registered() -> None:
    from tagwatch.background import all_tasks

    assert "requests.expire" in {t.name for t in all_tasks()}
