"""The crime mapping pages over HTTP: upload with row errors, runs, review on the match page,
authorisation, evidence downloads, where-was, and the permissions, scopes, audit entries and
CSRF checks around them."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable

import httpx
import pytest
from crime_scene import SCENE, T0
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access import sessions
from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.access.roles import permissions_for
from tagwatch.access.service import create_user
from tagwatch.cases.models import Allocation
from tagwatch.settings import Settings


def person(username: str, role: str, force: str | None = None) -> Principal:
    return Principal(
        user_id=None,
        username=username,
        display_name=username.title(),
        roles=frozenset({role}),
        permissions=permissions_for([role]),
        force_code=force,
    )


CASEWORKER = person("caseworker", "crime_hub_caseworker")
MANAGER = person("manager", "crime_hub_manager")
OTHER_MANAGER = person("manager2", "crime_hub_manager")
MPS_OFFICER = person("pc-mps", "police_officer", "MPS")
KENT_OFFICER = person("pc-kent", "police_officer", "KNT")


def crime_line(force: str, ref: str, east: float, north: float, minutes: int = 60) -> str:
    end = T0 + dt.timedelta(minutes=minutes)
    return (
        f"{force},BIAD,Burglary,{force}20260302,{ref},{T0:%Y%m%d%H%M%S},{end:%Y%m%d%H%M%S},"
        f'{east:.1f},{north:.1f},,,OSGB36,"Side window, rear"'
    )


def upload(client: TestClient, *lines: str, force: str = "") -> httpx.Response:
    data = ("\n".join(lines) + "\n").encode()
    response: httpx.Response = client.post(
        "/crime/batches",
        files={"file": ("crimes.csv", data, "text/csv")},
        data={"force": force},
        follow_redirects=False,
    )
    return response


def batch_id_of(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/crime/batches/(\d+)\?received=1", response.headers["location"])
    assert found, response.headers["location"]
    return int(found.group(1))


def match_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/crime/matches/(\d+)"', page)]


def audit(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# `make_client(who)` makes every client act as `who` (it overrides the app's caller), so a test
# calls it again whenever the person acting changes.


@pytest.fixture
def walker(
    make_wearer: Callable[..., Allocation], add_fixes: Callable[..., list[int]]
) -> Allocation:
    """A person walking east past the scene between 10:00 and 10:20, 30 m north of it."""
    allocation = make_wearer("TW-PAGES")
    add_fixes(allocation, [(m, -1000 + 100 * m, 30.0) for m in range(21)], accuracy=8)
    return allocation


@pytest.fixture
def matched(make_client: Callable[..., TestClient], walker: Allocation) -> tuple[int, int]:
    """An MPS batch received through the page, with one match: (batch id, match id)."""
    hub = make_client(CASEWORKER)
    batch_id = batch_id_of(upload(hub, crime_line("MPS", "01/1/26", *SCENE)))
    ids = match_ids(hub.get(f"/crime/batches/{batch_id}").text)
    assert len(ids) == 1
    return batch_id, ids[0]


def test_upload_keeps_good_rows_and_lists_each_bad_row(
    db: Session, make_client: Callable[..., TestClient], walker: Allocation
) -> None:
    hub = make_client(CASEWORKER)
    form = hub.get("/crime/upload")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    sent = upload(
        hub,
        crime_line("MPS", "01/1/26", *SCENE),
        crime_line("MPS", "01/2/26", SCENE[0] + 5000, SCENE[1]),
        "MPS,XX,bad,MPS20260302,01/3/26,20260302100000,20260302110000,1,1,,,,",
        crime_line("MPS", "01/4/26", *SCENE, minutes=13 * 60),
    )
    batch_id = batch_id_of(sent)
    page = hub.get(sent.headers["location"])
    assert "2 of 4 rows kept and matched; 2 rows have errors" in page.text
    assert "Partly accepted" in page.text
    assert "01/1/26" in page.text and "TW-PAGES" in page.text

    errors = hub.get(f"/crime/batches/{batch_id}/errors").text
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", errors, re.S)
    cells = [re.sub(r"<[^>]+>", " ", r).split() for r in rows[1:]]
    assert [c[0] for c in cells] == ["3", "4"]
    assert "INVALID_CRIME_TYPE" in errors and "CRIME_DATE_TIME_EXCEEDS_WINDOW" in errors
    assert "crime type" in errors  # the field, as people read it

    crimes = hub.get(f"/crime/batches/{batch_id}/crimes").text
    assert "01/1/26" in crimes and "01/2/26" in crimes and "01/3/26" not in crimes
    assert "Side window, rear" in crimes

    assert len(audit(db, "crime.batch.receive")) == 1
    assert len(audit(db, "crime.match.run")) == 1
    viewed = audit(db, "crime.match.view")
    assert viewed and viewed[-1].detail["people"] == ["TW-PAGES"]


def test_a_resent_crime_shows_as_a_new_version_or_a_duplicate(
    make_client: Callable[..., TestClient],
) -> None:
    hub = make_client(CASEWORKER)
    upload(hub, crime_line("MPS", "01/7/26", *SCENE))
    again = batch_id_of(upload(hub, crime_line("MPS", "01/7/26", *SCENE)))
    assert "Duplicate" in hub.get(f"/crime/batches/{again}/crimes").text
    moved = batch_id_of(upload(hub, crime_line("MPS", "01/7/26", SCENE[0] + 40, SCENE[1])))
    page = hub.get(f"/crime/batches/{moved}/crimes").text
    assert "Changed" in page and "crime location" in page


def test_upload_form_errors_are_shown_on_the_form(
    make_client: Callable[..., TestClient],
) -> None:
    hub = make_client(CASEWORKER)
    missing = hub.post("/crime/batches", data={"force": ""}, follow_redirects=False)
    assert missing.status_code == 400
    assert "There is a problem" in missing.text and 'href="#file"' in missing.text
    empty = hub.post(
        "/crime/batches", files={"file": ("e.csv", b"", "text/csv")}, follow_redirects=False
    )
    assert empty.status_code == 400 and "The file is empty" in empty.text
    # A file that cannot be read is recorded as failed, with its reason.
    failed = hub.post(
        "/crime/batches",
        files={"file": ("latin.csv", "MPS,RB,Café\n".encode("latin-1"), "text/csv")},
        follow_redirects=False,
    )
    page = hub.get(failed.headers["location"]).text
    assert "Failed" in page and "The file could not be read" in page
    assert "UTF-8" in page
    # Rows that are all invalid keep the batch and its errors, with nothing matched.
    useless = upload(hub, "MPS,XX,bad,MPS20260302,01/3/26,20260302100000,20260302110000,1,1,,,,")
    page = hub.get(useless.headers["location"]).text
    assert "No valid rows" in page and "No row of the file could be used" in page


def test_run_matching_on_demand_with_parameters(
    db: Session, make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    batch_id, _ = matched
    hub = make_client(CASEWORKER)
    runs = hub.get(f"/crime/batches/{batch_id}/runs")
    assert "tagwatch-crime-match/" in runs.text and 'name="radius_m"' in runs.text
    bad = hub.post(
        f"/crime/batches/{batch_id}/runs",
        data={"radius_m": "lots", "tolerance_s": "-5", "max_gap_s": ""},
    )
    assert bad.status_code == 400
    assert "The radius must be a number of metres from 0 to 5000" in bad.text
    assert "The tolerance must be a number of seconds" in bad.text
    assert "Enter the maximum gap in seconds" in bad.text
    assert len(audit(db, "crime.match.run")) == 1  # nothing ran

    ran = hub.post(
        f"/crime/batches/{batch_id}/runs",
        data={"radius_m": "10", "tolerance_s": "0", "max_gap_s": "600"},
        follow_redirects=False,
    )
    assert ran.status_code == 303
    page = hub.get(ran.headers["location"]).text
    assert "radius 10 m, tolerance 0 s, maximum gap 600 s" in page
    assert "There are no matches here" in page  # 30 m away is outside 10 m
    listing = hub.get(f"/crime/batches/{batch_id}/runs").text
    assert listing.count(f'href="/crime/batches/{batch_id}?run=') == 2
    assert "On demand" in listing and "Automatic" in listing
    assert len(audit(db, "crime.match.run")) == 2


def test_the_match_page_shows_the_track_and_audits_it(
    db: Session, make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    _, match_id = matched
    page = make_client(CASEWORKER).get(f"/crime/matches/{match_id}")
    assert page.status_code == 200
    text = page.text
    assert 'data-match-map="match-map-data"' in text and "/static/js/crime-match-map.js" in text
    assert 'id="match-map-data"' in text and '"radius_m":100.0' in text
    # The positions table works without JavaScript: the fix inside the radius is labelled.
    table = text[text.index('id="positions-table"') :]
    assert "<strong>A1</strong>" in table
    assert "30.0 m" in table
    assert "Closest approach" in text and "Worst accuracy" in text and "8 m" in text
    assert "No track from" in text  # only 20 of the 60 minutes are covered
    assert 'name="decision"' in text  # a caseworker may review
    assert "Authorise for release" not in text  # but not authorise
    viewed = audit(db, "crime.match.track_view")
    assert len(viewed) == 1
    assert viewed[0].subject_id == str(match_id)
    assert viewed[0].detail["person"] == "TW-PAGES" and viewed[0].detail["positions"] > 0


def test_qualify_then_a_different_manager_authorises(
    db: Session, make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    _, match_id = matched
    hub = make_client(CASEWORKER)
    blank = hub.post(f"/crime/matches/{match_id}/review", data={"decision": "qualified"})
    assert blank.status_code == 400 and "Enter the reason for the decision" in blank.text
    nothing = hub.post(f"/crime/matches/{match_id}/review", data={"reason": "x"})
    assert nothing.status_code == 400 and "Select qualify or dismiss" in nothing.text
    done = hub.post(
        f"/crime/matches/{match_id}/review",
        data={"decision": "qualified", "reason": "Walked past the door at 10:10"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "Match qualified" in hub.get(done.headers["location"]).text
    assert audit(db, "crime.match.review")[-1].purpose == "Walked past the door at 10:10"

    assert hub.post(f"/crime/matches/{match_id}/authorise").status_code == 403

    manager = make_client(MANAGER)
    # A manager who qualified a match may not also authorise it.
    manager.post(
        f"/crime/matches/{match_id}/review",
        data={"decision": "qualified", "reason": "Checked again"},
    )
    own = manager.get(f"/crime/matches/{match_id}").text
    assert "another manager must authorise it" in own
    refused = manager.post(f"/crime/matches/{match_id}/authorise")
    assert refused.status_code == 400 and "cannot also authorise" in refused.text

    other = make_client(OTHER_MANAGER)
    authorised = other.post(f"/crime/matches/{match_id}/authorise", follow_redirects=False)
    assert authorised.status_code == 303
    page = other.get(authorised.headers["location"]).text
    assert "Match authorised" in page and "manager2" in page
    assert 'name="decision"' not in page  # an authorised match is no longer reviewed
    assert len(audit(db, "crime.match.authorise")) == 1


def test_police_see_their_forces_released_matches_only(
    make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    batch_id, match_id = matched
    hub = make_client(CASEWORKER)
    kent_batch = batch_id_of(upload(hub, crime_line("KNT", "KT/1/26", *SCENE)))
    kent_match = match_ids(hub.get(f"/crime/batches/{kent_batch}").text)[0]

    police = make_client(MPS_OFFICER)
    listing = police.get("/crime").text
    assert f"/crime/batches/{batch_id}" in listing
    assert f"/crime/batches/{kent_batch}" not in listing
    assert "Upload a crime file" not in listing
    page = police.get(f"/crime/batches/{batch_id}").text
    assert "No match has been released to your force" in page
    # A force is told how many matches were released to it, not how many were found.
    assert police.get(f"/api/v1/crime/batches/{batch_id}").json()["run"]["match_count"] == 0
    assert [
        r["match_count"] for r in police.get(f"/api/v1/crime/batches/{batch_id}/runs").json()
    ] == [0]
    assert police.get(f"/crime/matches/{match_id}").status_code == 404
    assert police.get(f"/crime/batches/{kent_batch}").status_code == 404
    assert police.get(f"/crime/batches/{kent_batch}/crimes").status_code == 404
    assert police.get(f"/crime/matches/{kent_match}").status_code == 404

    make_client(CASEWORKER).post(
        f"/crime/matches/{match_id}/review",
        data={"decision": "qualified", "reason": "Close pass"},
    )
    # Qualified is not yet released.
    assert make_client(MPS_OFFICER).get(f"/crime/matches/{match_id}").status_code == 404
    make_client(MANAGER).post(f"/crime/matches/{match_id}/authorise")
    police = make_client(MPS_OFFICER)
    assert match_ids(police.get(f"/crime/batches/{batch_id}").text) == [match_id]
    assert police.get(f"/api/v1/crime/batches/{batch_id}").json()["run"]["match_count"] == 1
    released = police.get(f"/crime/matches/{match_id}").text
    assert "<strong>A1</strong>" in released
    assert 'name="decision"' not in released and "Authorise for release" not in released
    assert "evidence.pdf" not in released  # downloading packs is the hub's
    assert police.get(f"/crime/matches/{match_id}/evidence.pdf").status_code == 403
    assert police.get("/crime/where").status_code == 403
    assert police.post(f"/crime/batches/{batch_id}/runs", data={}).status_code == 403
    assert police.post(f"/crime/matches/{match_id}/review", data={}).status_code == 403
    assert police.get("/crime/upload").status_code == 403


def test_evidence_packs_are_the_same_for_the_same_run_and_audited(
    db: Session,
    make_client: Callable[..., TestClient],
    matched: tuple[int, int],
    walker: Allocation,
    add_fixes: Callable[..., list[int]],
) -> None:
    _, match_id = matched
    manager = make_client(MANAGER)
    early = manager.get(f"/crime/matches/{match_id}/evidence.pdf")
    assert early.status_code == 422  # not yet qualified
    make_client(CASEWORKER).post(
        f"/crime/matches/{match_id}/review",
        data={"decision": "qualified", "reason": "Close pass"},
    )
    manager = make_client(MANAGER)
    page = manager.get(f"/crime/matches/{match_id}").text
    assert f"/crime/matches/{match_id}/evidence.docx" in page
    pdf = manager.get(f"/crime/matches/{match_id}/evidence.pdf")
    docx = manager.get(f"/crime/matches/{match_id}/evidence.docx")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert docx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert manager.get(f"/crime/matches/{match_id}/evidence.odt").status_code == 404
    # A fix arriving after the run is outside its snapshot: the packs do not change.
    add_fixes(walker, [(10.5, 0.0, 0.0)])
    assert manager.get(f"/crime/matches/{match_id}/evidence.pdf").content == pdf.content
    assert manager.get(f"/crime/matches/{match_id}/evidence.docx").content == docx.content
    exports = audit(db, "crime.evidence.export")
    assert [e.detail["format"] for e in exports] == ["pdf", "docx", "pdf", "docx"]


def test_where_was_this_person_answers_in_a_sentence(
    db: Session, make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    hub = make_client(CASEWORKER)
    assert "Where was this person?" in hub.get("/crime/where").text
    empty = hub.post("/crime/where", data={"radius_m": "100"})
    assert empty.status_code == 400
    for message in (
        "Enter the person&#39;s tagwatch reference",
        "Enter the crime reference",
        "Enter why you are asking",
    ):
        assert message in empty.text
    unknown = hub.post(
        "/crime/where",
        data={"person": "TW-NOBODY", "crime": "01/1/26", "radius_m": "100", "purpose": "Enquiry"},
    )
    assert unknown.status_code == 400 and "There is no person TW-NOBODY" in unknown.text
    answer = hub.post(
        "/crime/where",
        data={
            "person": "TW-PAGES",
            "crime": "01/1/26",
            "radius_m": "100",
            "purpose": "Enquiry 42",
        },
    )
    assert answer.status_code == 200
    assert re.search(r"Within 30 m of the crime", answer.text)
    far = hub.post(
        "/crime/where",
        data={"person": "TW-PAGES", "crime": "01/1/26", "radius_m": "10", "purpose": "Again"},
    )
    assert "At least 30 m away throughout the window, with 33% of it covered" in far.text
    asked = audit(db, "crime.where_was")
    assert [e.purpose for e in asked] == ["Enquiry 42", "Again"]
    assert asked[0].subject_id == "TW-PAGES"


def test_each_page_needs_its_permission(make_client: Callable[..., TestClient]) -> None:
    nobody = make_client(person("analyst", "analyst"))
    for url in ("/crime", "/crime/batches/1", "/crime/matches/1", "/crime/where"):
        assert nobody.get(url).status_code == 403, url
    assert "You do not have access" in nobody.get("/crime", headers={"accept": "text/html"}).text


# --- through the real sign-in session: CSRF ------------------------------------------------------

CSRF = "crime-pages-csrf"


@pytest.fixture
def signed_in(
    app: FastAPI, db: Session, settings: Settings
) -> Callable[[str, str, str | None], TestClient]:
    """A browser holding the session cookie of a real user with the role."""

    def build(username: str, role: str, force: str | None = None) -> TestClient:
        user = create_user(db, username=username, roles=[role], force_code=force)
        db.commit()
        browser = TestClient(app)
        browser.cookies.set(
            sessions.COOKIE_NAME, sessions.dump(settings, {"uid": user.id, "csrf": CSRF})
        )
        return browser

    return build


def test_forms_need_the_sessions_csrf_token(
    signed_in: Callable[..., TestClient], walker: Allocation
) -> None:
    browser = signed_in("csrf-caseworker", "crime_hub_caseworker")
    form = browser.get("/crime/upload").text
    assert f'name="csrf_token" value="{CSRF}"' in form
    data = (crime_line("MPS", "01/8/26", *SCENE) + "\n").encode()
    forged = browser.post(
        "/crime/batches", files={"file": ("c.csv", data, "text/csv")}, follow_redirects=False
    )
    assert forged.status_code == 403 and "did not come from this service" in forged.text
    sent = browser.post(
        "/crime/batches",
        files={"file": ("c.csv", data, "text/csv")},
        data={"csrf_token": CSRF},
        follow_redirects=False,
    )
    batch_id = batch_id_of(sent)
    match_id = match_ids(browser.get(f"/crime/batches/{batch_id}").text)[0]
    review = {"decision": "qualified", "reason": "Close pass"}
    assert browser.post(f"/crime/matches/{match_id}/review", data=review).status_code == 403
    accepted = browser.post(
        f"/crime/matches/{match_id}/review",
        data={**review, "csrf_token": CSRF},
        follow_redirects=False,
    )
    assert accepted.status_code == 303


def test_the_docx_pack_is_a_word_document_with_fixed_times(
    make_client: Callable[..., TestClient], matched: tuple[int, int]
) -> None:
    _, match_id = matched
    make_client(CASEWORKER).post(
        f"/crime/matches/{match_id}/review",
        data={"decision": "qualified", "reason": "Close pass"},
    )
    docx = make_client(MANAGER).get(f"/crime/matches/{match_id}/evidence.docx").content
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        document = archive.read("word/document.xml").decode()
        assert any(n.startswith("word/media/") for n in archive.namelist())  # the map
    for text in ("Witness statement", "TW-PAGES", "01/1/26", "A1", "Coverage and accuracy"):
        assert text in document
