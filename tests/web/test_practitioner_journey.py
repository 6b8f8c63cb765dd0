"""A probation practitioner: sign in, find a person, open the trail, play it, act on alerts."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from tagwatch.access.models import AuditEntry
from tagwatch.london import LONDON
from tagwatch.web.portal.period import FIELD_FORMAT

PASSWORD = "officer1-test-password"


def _audited(server_sessions: Any, action: str, username: str) -> list[AuditEntry]:
    with server_sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == action, AuditEntry.username == username
                )
            )
        )


def test_navigation_offers_only_what_a_practitioner_may_do(
    page: Any, sign_in: Any, seeded: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    items = page.locator("#navigation a.govuk-service-navigation__link").all_inner_texts()
    assert [i.strip() for i in items] == ["Caseload", "Alerts", "Live map"]


def test_find_a_person_by_name_crn_and_date_of_birth(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any, server_sessions: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    page.goto("/caseload")
    assert page.get_by_role("heading", level=1).inner_text() == "My caseload"
    table = page.locator("#caseload-table")
    assert "Seán O'Neil-Smith" in table.inner_text()
    assert "Adam Brown" not in table.inner_text()  # another team's case
    assert_accessible(page)

    for terms in ("o'neil-smith", "ONEIL", "X123456"):
        page.get_by_label("Name, CRN or PNC").fill(terms)
        with page.expect_navigation():
            page.get_by_role("button", name="Apply filters").click()
        assert page.locator("#caseload-table tbody tr").count() == 1, terms
        assert "O'Neil-Smith" in page.locator("#caseload-table").inner_text()

    page.get_by_label("Name, CRN or PNC").fill("")
    page.get_by_label("Day").fill("2")
    page.get_by_label("Month").fill("11")
    page.get_by_label("Year").fill("1985")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply filters").click()
    assert page.locator("#caseload-table").inner_text().count("Zoë Ward") == 1
    assert "O'Neil" not in page.locator("#caseload-table").inner_text()

    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("2")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply filters").click()
    summary = page.locator(".govuk-error-summary")
    assert "real date" in summary.inner_text()
    assert summary.get_by_role("link").get_attribute("href") == "#dob-day"
    assert_accessible(page)

    searches = _audited(server_sessions, "person.search", "officer1")
    assert any(e.detail["terms"].get("q") == "o'neil-smith" for e in searches)


def test_caseload_sorts_by_open_violations(page: Any, sign_in: Any, seeded: Any) -> None:
    sign_in(page, "officer1", PASSWORD)
    page.goto("/caseload")
    with page.expect_navigation():
        page.get_by_role("link", name="Open violations").click()
    with page.expect_navigation():
        page.get_by_role("link", name="Open violations").click()  # again: most first
    first = page.locator("#caseload-table tbody tr").first.inner_text()
    assert "O'Neil-Smith" in first
    header = page.locator("th[aria-sort=descending]")
    assert "Open violations" in header.inner_text()


def test_person_page_shows_orders_curfew_zones_and_compliance(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    page.goto("/caseload")
    page.get_by_role("link", name="Seán O'Neil-Smith").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Seán O'Neil-Smith"
    timetable = page.get_by_role("table", name=re.compile(r"Curfew timetable \(84"))
    assert "19:00 to 07:00 (next day)" in timetable.inner_text()
    assert "84" in timetable.locator("caption").inner_text()
    page.locator("#zones-map[data-ready=true]").wait_for()
    zones_map = page.locator("#zones-map")
    assert int(zones_map.get_attribute("data-zones")) >= 1  # the exclusion zone
    assert zones_map.get_attribute("data-addresses") == "1"  # the curfew address
    assert "Change history" in page.content()
    assert page.locator(".moj-timeline__item").count() > 0
    assert_accessible(page)


def test_trail_plays_breaks_at_gaps_and_exports(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any, server_sessions: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    period = (
        f"from={quote(seeded.trail_start.astimezone(LONDON).strftime(FIELD_FORMAT))}"
        f"&to={quote(seeded.trail_end.astimezone(LONDON).strftime(FIELD_FORMAT))}"
    )
    page.goto(f"/people/{seeded.person_id}")
    page.get_by_role("button", name="View trail").click()
    assert "Trail" in page.get_by_role("heading", level=1).inner_text()
    page.goto(f"/people/{seeded.person_id}/trail?{period}")
    player = page.locator("#trail-player[data-ready=true]")
    player.wait_for()
    assert player.get_attribute("data-runs") == "2"  # the 20-minute gap splits the track
    assert "1 gap" in page.locator("#trail-summary").inner_text()
    assert_accessible(page)

    start = int(player.get_attribute("data-player-time"))
    page.get_by_label("Speed").select_option("600")
    page.get_by_role("button", name="Play").click()
    deadline = time.monotonic() + 10
    while int(player.get_attribute("data-player-time")) < start + 10 * 60_000:
        assert time.monotonic() < deadline, "the trail did not play"
        page.wait_for_timeout(100)
    page.get_by_role("button", name="Pause").click()
    assert player.get_attribute("data-playing") == "false"

    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows and {r["segment"] for r in rows} == {"1", "2"}
    assert rows[0]["person_ref"] == seeded.person_ref

    assert _audited(server_sessions, "location.trail_view", "officer1")
    exports = _audited(server_sessions, "location.trail_export", "officer1")
    assert exports and exports[-1].detail["format"] == "csv"


def test_acknowledge_an_alert_and_record_an_outcome(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    page.goto("/alerts")
    assert_accessible(page)
    page.goto(f"/alerts/{seeded.open_alert_ids[0]}")
    assert_accessible(page)
    # Each button posts a form: wait for the page it leads to before reading it.
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge alert").click()
    assert "Acknowledged" in page.content()
    with page.expect_navigation():
        page.get_by_role("button", name="Record outcome").click()
    summary = page.locator(".govuk-error-summary")
    assert "Select what was decided" in summary.inner_text()
    assert_accessible(page)
    page.get_by_label("Warning").check()
    page.get_by_role("textbox", name="Reason").fill(
        "Spoke to him; he accepts he went into the zone."
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Record outcome").click()
    assert "Resolved" in page.locator(".govuk-summary-list").inner_text()
    assert page.get_by_role("button", name="Record outcome").count() == 0


def test_a_tamper_alert_waits_for_the_review_before_any_outcome(
    page: Any, sign_in: Any, seeded: Any
) -> None:
    sign_in(page, "officer1", PASSWORD)
    page.goto(f"/alerts/{seeded.practitioner_tamper_alert_id}")
    assert "Waiting for a manager to review" in page.content()
    assert page.get_by_role("button", name="Record outcome").count() == 0
    assert page.get_by_role("button", name="Record tamper review").count() == 0


def test_other_teams_people_are_not_found(page: Any, sign_in: Any, seeded: Any) -> None:
    sign_in(page, "officer1", PASSWORD)
    response = page.goto(f"/people/{seeded.other_person_id}")
    assert response.status == 404
    response = page.goto(f"/people/{seeded.other_person_id}/trail")
    assert response.status == 404
