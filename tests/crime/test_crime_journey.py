"""The crime mapping hub in Chromium: a caseworker uploads a police file, runs the matcher,
reviews a match on the map and qualifies it; a manager authorises it; the force's officer sees
it, and is refused another force's batch. axe finds no serious violation on any page."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from crime_scene import SCENE, T0, gps_fixes
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from case_builders import allocate
from tagwatch.access.models import AuditEntry
from tagwatch.access.service import create_user
from tagwatch.crime import service
from tagwatch.db.engine import unit_of_work

# (username, role, police force)
USERS = (
    ("hubworker", "crime_hub_caseworker", None),
    ("hubmanager", "crime_hub_manager", None),
    ("pc-mps", "police_officer", "MPS"),
)


def password_of(username: str) -> str:
    return f"{username}-crime-password"


@dataclass(frozen=True)
class CrimeWorld:
    kent_batch_id: int


@pytest.fixture(scope="session")
def crime_world(server_sessions: sessionmaker[Session]) -> CrimeWorld:
    """Hub and police users, a person who walked past the scene, and a Kent batch."""
    with unit_of_work(server_sessions) as session:
        for username, role, force in USERS:
            create_user(
                session,
                username=username,
                roles=[role],
                display_name=username.title(),
                password=password_of(username),
                force_code=force,
            )
        allocation = allocate(
            session,
            person_ref="TW-JOURNEY",
            order_ref="ORD-JOURNEY",
            serial="GPS-JOURNEY",
            fitted_at=T0 - dt.timedelta(days=1),
        )
        # East along a street 30 m north of the scene, a position a minute from 10:00.
        session.add_all(
            gps_fixes(
                "GPS-JOURNEY",
                allocation.id,
                [(m, -600 + 60 * m, 30.0) for m in range(21)],
                accuracy=12,
            )
        )
    with unit_of_work(server_sessions) as session:
        kent = service.import_batch(
            session,
            crime_file("KNT", "KT/9/26"),
            file_name="kent.csv",
            principal=None,
        )
    return CrimeWorld(kent.batch_id)


def crime_file(force: str, ref: str, *extra: str) -> bytes:
    end = T0 + dt.timedelta(hours=1)
    line = (
        f"{force},RB,Robbery,{force}20260302,{ref},{T0:%Y%m%d%H%M%S},{end:%Y%m%d%H%M%S},"
        f'{SCENE[0]:.0f},{SCENE[1]:.0f},,,OSGB36,"Phone taken, suspect ran east"'
    )
    return ("\n".join([line, *extra]) + "\n").encode()


def switch_user(page: Any, sign_in: Any, username: str) -> None:
    page.context.clear_cookies()
    sign_in(page, username, password_of(username))


def audited(server_sessions: sessionmaker[Session], action: str, username: str) -> int:
    with server_sessions() as session:
        return len(
            list(
                session.scalars(
                    select(AuditEntry.id).where(
                        AuditEntry.action == action, AuditEntry.username == username
                    )
                )
            )
        )


def test_a_match_goes_from_upload_to_the_force(
    page: Any,
    sign_in: Any,
    assert_accessible: Any,
    crime_world: CrimeWorld,
    server_sessions: sessionmaker[Session],
) -> None:
    # The hub caseworker uploads the force's file: one good row, one bad.
    switch_user(page, sign_in, "hubworker")
    page.get_by_role("link", name="Crime mapping").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Crime mapping"
    assert_accessible(page)
    page.get_by_role("button", name="Upload a crime file").click()
    assert_accessible(page)
    bad_row = "MPS,RB,Robbery,MPS20260302,01/2/26,20260302100000,20260302090000,1,1,,,,"
    page.get_by_label("Crime file (CSV)").set_input_files(
        files=[
            {
                "name": "mps-20260302.csv",
                "mimeType": "text/csv",
                "buffer": crime_file("MPS", "01/1/26", bad_row),
            }
        ]
    )
    page.get_by_role("button", name="Upload and match").click()
    banner = page.locator("#received-banner").inner_text()
    assert "1 of 2 rows kept and matched; 1 row has errors" in banner
    assert "TW-JOURNEY" in page.locator("#matches-table").inner_text()
    assert_accessible(page)
    batch_url = page.url.split("?")[0]

    page.get_by_role("link", name="Errors (1)").click()
    first_error = page.locator("#errors-table tbody tr").first.locator("td").all_inner_texts()
    assert first_error[0] == "2"  # the row, counted from 1
    assert first_error[1] == "date to"  # the field
    assert "CRIME_DATE_TIME_TO_AFTER_FROM" in first_error[2]  # and the reason
    assert_accessible(page)
    page.get_by_role("link", name="Crimes (1)").click()
    assert "Phone taken, suspect ran east" in page.locator("#crimes-table").inner_text()
    assert_accessible(page)

    # Matching again on demand with a wider radius.
    page.get_by_role("link", name=re.compile(r"Runs \(1\)")).click()
    assert_accessible(page)
    page.get_by_label("Radius").fill("150")
    page.get_by_role("button", name="Run matching").click()
    assert (
        "radius 150 m, tolerance 0 s, maximum gap 600 s"
        in page.locator("#run-summary").inner_text()
    )
    page.get_by_role("link", name="01/1/26").click()

    # The match on the map: crime, radius, labelled positions inside it.
    map_element = page.locator("[data-match-map][data-ready=true]")
    map_element.wait_for()
    labelled = int(map_element.get_attribute("data-labelled") or "0")
    assert labelled == page.locator("#positions-table strong").count() > 0
    assert page.locator(".tw-crime-label", has_text="A1").count() == 1
    assert "Within 150 m of the crime" in page.locator("#match-sentence").inner_text()
    assert_accessible(page)
    page.get_by_label("Qualify").check()
    page.get_by_label("Reason").fill("Walked past the scene at 10:10, accuracy 12 m")
    page.get_by_role("button", name="Record the decision").click()
    assert "Match qualified" in page.locator("#done-banner").inner_text()
    match_url = page.url.split("?")[0]
    assert audited(server_sessions, "crime.match.track_view", "hubworker") >= 2

    # A manager authorises it and can take the evidence pack.
    switch_user(page, sign_in, "hubmanager")
    page.goto(match_url)
    page.locator("[data-match-map][data-ready=true]").wait_for()
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Evidence pack (PDF)").click()
    assert download.value.suggested_filename.endswith(".pdf")
    page.get_by_role("button", name="Authorise for release").click()
    assert "MPS can now see it" in page.locator("#done-banner").inner_text()
    assert_accessible(page)
    assert audited(server_sessions, "crime.evidence.export", "hubmanager") == 1

    # The force's officer sees the released match, and nothing of another force.
    switch_user(page, sign_in, "pc-mps")
    page.get_by_role("link", name="Crime mapping").click()
    batches = page.locator("#batches-table").inner_text()
    assert "MPS20260302" in batches and "KNT20260302" not in batches
    assert_accessible(page)
    page.goto(batch_url)
    assert page.locator("#matches-table tbody tr").count() == 1
    assert_accessible(page)
    page.get_by_role("link", name="01/1/26").click()
    page.locator("[data-match-map][data-ready=true]").wait_for()
    assert page.get_by_role("button", name="Record the decision").count() == 0
    assert page.get_by_role("link", name="Evidence pack (PDF)").count() == 0
    assert_accessible(page)
    response = page.goto(f"/crime/batches/{crime_world.kent_batch_id}")
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    assert_accessible(page)


def test_the_hub_asks_where_a_person_was(
    page: Any, sign_in: Any, assert_accessible: Any, crime_world: CrimeWorld
) -> None:
    switch_user(page, sign_in, "hubworker")
    page.goto("/crime/where")
    assert_accessible(page)
    page.get_by_role("button", name="Ask").click()
    assert "Enter the crime reference" in page.locator(".govuk-error-summary").inner_text()
    assert_accessible(page)
    page.get_by_label("Person's tagwatch reference").fill("TW-JOURNEY")
    page.get_by_label("Crime reference").fill("KT/9/26")
    page.get_by_label("Radius").fill("100")
    page.get_by_label("Why you are asking").fill("Kent robbery enquiry")
    page.get_by_role("button", name="Ask").click()
    assert page.locator("#where-sentence").inner_text().startswith("Within 30 m")
    assert_accessible(page)
