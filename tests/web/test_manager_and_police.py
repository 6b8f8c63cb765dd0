"""A manager sees the delivery unit's caseload and escalations; a police officer is refused."""

from __future__ import annotations

from typing import Any

MANAGER = ("manager1", "manager1-test-password")
POLICE = ("police1", "police1-test-password")


def test_manager_sees_the_units_caseload_and_escalated_alerts(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, *MANAGER)
    nav = [
        t.strip()
        for t in page.locator("#navigation a.govuk-service-navigation__link").all_inner_texts()
    ]
    assert nav == [
        "Caseload",
        "Alerts",
        "Live map",
        "New order",
        "Data requests",
        "Statistics",
        "Data quality",
    ]
    page.goto("/caseload")
    assert page.get_by_role("heading", level=1).inner_text() == "Delivery unit caseload"
    assert "Seán O'Neil-Smith" in page.locator("#caseload-table").inner_text()
    page.goto("/alerts?view=escalated")
    table = page.locator("#alerts-table")
    assert table.locator("tbody tr").count() >= 1
    assert "Escalated" in table.inner_text()
    assert_accessible(page)


def test_manager_reviews_a_tamper_alert_before_the_outcome(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, *MANAGER)
    page.goto(f"/alerts/{seeded.tamper_alert_id}")
    assert page.get_by_role("button", name="Record outcome").count() == 0
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge alert").click()
    # Acknowledged, but the review still comes first.
    assert page.get_by_role("button", name="Record outcome").count() == 0
    with page.expect_navigation():
        page.get_by_role("button", name="Record tamper review").click()
    assert "Select what the review found" in page.locator(".govuk-error-summary").inner_text()
    assert_accessible(page)
    page.get_by_label("Device fault").check()
    page.get_by_label("Evidence considered").fill(
        "Strap batch B1 has a known fault; body contact stayed ok."
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Record tamper review").click()
    assert "Device fault" in page.locator(".govuk-inset-text").inner_text()
    # A device fault bars enforcement: only "no action" is offered.
    outcomes = page.locator("input[name=outcome]")
    assert outcomes.count() == 1 and outcomes.first.get_attribute("value") == "no_action"


def test_police_officer_is_refused_trails_and_browsing_people(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, *POLICE)
    # Their routes to location data are crime matching and requests, never browsing.
    links = page.locator("#navigation a.govuk-service-navigation__link").all_inner_texts()
    assert [text.strip() for text in links] == ["Crime mapping", "Data requests"]
    for url in (
        f"/people/{seeded.person_id}/trail",
        f"/people/{seeded.person_id}",
        "/caseload",
        "/live",
    ):
        response = page.goto(url)
        assert response.status == 403, url
        assert (
            page.get_by_role("heading", level=1).inner_text()
            == "You do not have access to this page"
        )
    assert "location data request" in page.content()
    assert_accessible(page)
    response = page.goto(f"/people/{seeded.person_id}/trail/export.csv")
    assert response.status == 403


def test_signed_out_visitors_are_sent_to_sign_in(page: Any, seeded: Any) -> None:
    page.goto(f"/people/{seeded.person_id}")
    assert page.url.endswith(f"/sign-in?next=/people/{seeded.person_id}")
