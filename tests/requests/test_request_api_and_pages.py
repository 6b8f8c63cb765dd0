"""Data requests over HTTP: the JSON API and the pages, with their guards and scope."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from request_cases import APPROVER, POLICE, T0, caller
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.cases.models import Allocation, Person

OFFICER = caller("pc_api", POLICE, force_code="WYP")
INSPECTOR = caller("insp_api", APPROVER)


def _body(person: Person, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "identifier": person.ref,
        "start": T0.isoformat(),
        "end": (T0 + dt.timedelta(hours=2)).isoformat(),
        "purpose": "Robbery enquiry",
        "lawful_basis": "crime",
        "crime_reference": "13/999/26",
    }
    return body | changes


def test_api_lifecycle_with_guards_and_scope(
    db: Session,
    make_client: Callable[..., TestClient],
    make_wearer: Callable[..., Allocation],
    add_fixes: Callable[..., None],
) -> None:
    allocation = make_wearer()
    add_fixes(allocation, [0, 1, 2, 3, 200])
    person = db.get(Person, allocation.person_id)
    assert person is not None
    officer = make_client(OFFICER)
    created = officer.post("/api/v1/data-requests", json=_body(person))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]

    # Police cannot approve (no permission); the approver cannot approve without a reason.
    assert (
        officer.post(
            f"/api/v1/data-requests/{request_id}/approve", json={"reason": "x"}
        ).status_code
        == 403
    )
    inspector = make_client(INSPECTOR)
    assert (
        inspector.post(
            f"/api/v1/data-requests/{request_id}/approve", json={"reason": ""}
        ).status_code
        == 422
    )
    approved = inspector.post(f"/api/v1/data-requests/{request_id}/approve", json={"reason": "ok"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["files"] == []  # the approver is not given the files
    again = inspector.post(f"/api/v1/data-requests/{request_id}/refuse", json={"reason": "no"})
    assert again.status_code == 409

    officer = make_client(OFFICER)
    mine = officer.get(f"/api/v1/data-requests/{request_id}").json()
    assert {f["format"] for f in mine["files"]} == {"csv", "geojson", "kml", "pdf"}
    got = officer.get(f"/api/v1/data-requests/{request_id}/files/csv")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == got.headers["x-content-sha256"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [r["time"][11:16] for r in rows] == ["00:00", "00:01", "00:02", "00:03"]
    assert officer.get(f"/api/v1/data-requests/{request_id}/files/shp").status_code == 404

    other = make_client(caller("pc_mps", POLICE, force_code="MPS"))
    assert other.get(f"/api/v1/data-requests/{request_id}").status_code == 404
    assert other.get(f"/api/v1/data-requests/{request_id}/files/csv").status_code == 404
    assert other.get("/api/v1/data-requests").json() == []

    # Police still never browse trails.
    assert other.get(f"/people/{person.id}/trail").status_code == 403

    report = make_client(INSPECTOR).get(
        "/api/v1/data-requests/turnaround",
        params={"start": (T0 - dt.timedelta(days=30)).isoformat(), "end": "2100-01-01T00:00:00Z"},
    )
    assert report.status_code == 200 and report.json()["approved"] >= 1


def test_api_names_the_bad_fields(
    db: Session, make_client: Callable[..., TestClient], make_wearer: Callable[..., Allocation]
) -> None:
    person = db.get(Person, make_wearer().person_id)
    assert person is not None
    bad = make_client(OFFICER).post(
        "/api/v1/data-requests",
        json=_body(person, end=(T0 + dt.timedelta(days=8)).isoformat(), crime_reference=None),
    )
    assert bad.status_code == 422
    assert set(bad.json()["detail"]) == {"end", "crime_reference"}
    unknown = make_client(OFFICER).post(
        "/api/v1/data-requests", json=_body(person, identifier="NOPE1")
    )
    assert unknown.status_code == 422 and set(unknown.json()["detail"]) == {"identifier"}
    # The failed look-up is still in the audit log.
    looked_up = db.scalars(
        select(AuditEntry.detail).where(AuditEntry.action == "request.person_lookup")
    ).all()
    assert {"identifier": "NOPE1", "found": False} in looked_up


def test_pages_journey_ask_decide_download(
    db: Session,
    make_client: Callable[..., TestClient],
    make_wearer: Callable[..., Allocation],
    add_fixes: Callable[..., None],
) -> None:
    allocation = make_wearer()
    add_fixes(allocation, [0, 1, 2])
    person = db.get(Person, allocation.person_id)
    assert person is not None
    officer = make_client(OFFICER)
    assert "Ask for location data" in officer.get("/data-requests").text
    form = officer.get("/data-requests/new")
    assert form.status_code == 200 and "csrf_token" in form.text

    empty = officer.post("/data-requests", data={"identifier": person.pnc})
    assert empty.status_code == 400
    assert "There is a problem" in empty.text and 'href="#purpose"' in empty.text

    sent = officer.post(
        "/data-requests",
        data={
            "identifier": person.pnc,
            "start": "2026-11-02T00:00",
            "end": "2026-11-02T06:00",
            "lawful_basis": "crime",
            "crime_reference": "13/1/26",
            "purpose": "Assault enquiry",
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    detail_url = sent.headers["location"]
    request_id = int(detail_url.rsplit("/", 1)[1])

    inspector = make_client(INSPECTOR)
    assert detail_url in inspector.get("/data-requests/approvals").text
    no_reason = inspector.post(f"{detail_url}/decision", data={"decision": "approve"})
    assert no_reason.status_code == 400 and 'href="#reason"' in no_reason.text
    decided = inspector.post(
        f"{detail_url}/decision",
        data={"decision": "approve", "reason": "Necessary"},
        follow_redirects=False,
    )
    assert decided.status_code == 303
    assert "files/csv" not in inspector.get(detail_url).text

    officer = make_client(OFFICER)
    page = officer.get(detail_url).text
    links = set(re.findall(rf"/data-requests/{request_id}/files/(\w+)", page))
    assert links == {"csv", "geojson", "kml", "pdf"}
    pdf = officer.get(f"{detail_url}/files/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert (
        make_client(caller("pc_other", POLICE, force_code="MPS")).get(detail_url).status_code == 404
    )
