"""Creating and varying an order through the form: drawn zones, errors, and no JavaScript."""

from __future__ import annotations

import json
from typing import Any

MANAGER = ("manager1", "manager1-test-password")


def test_form_errors_link_to_their_fields_and_a_drawn_zone_creates_the_order(
    page: Any, sign_in: Any, seeded: Any, assert_accessible: Any
) -> None:
    sign_in(page, *MANAGER)
    page.goto(f"/people/{seeded.person_id}")
    page.get_by_role("button", name="Create an order").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Create an order"
    page.locator("#zone-map[data-ready=true]").wait_for()
    assert_accessible(page)

    page.get_by_label("Type of order").select_option("community_order")
    page.get_by_label("Probation region").select_option("LDN")
    page.get_by_label("Probation delivery unit").select_option("LDN-CAMISL")
    page.get_by_label("Name of the notifying court, prison or office").fill(
        "Highbury Corner Magistrates' Court"
    )
    page.get_by_label("Monday curfew starts").fill("01:00")
    page.get_by_label("Monday curfew ends").fill("02:00")  # one hour: too short
    page.get_by_label("Exclusion zone").check()
    page.get_by_role("button", name="Create the order").click()

    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    links = {a.get_attribute("href") for a in summary.get_by_role("link").all()}
    assert "#zone_geometry" in links  # no zone drawn yet
    assert_accessible(page)
    page.locator("#zone-map[data-ready=true]").wait_for()

    page.get_by_label("Monday curfew ends").fill("07:00")
    page.get_by_label("Zone name").fill("Town centre")
    page.locator("#zone-map").scroll_into_view_if_needed()
    box = page.locator("#zone-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-40, -40), (40, -40), (40, 40), (-40, 40)):
        page.mouse.click(cx + dx, cy + dy)
    drawn = json.loads(page.locator("#zone_geometry").input_value())
    assert drawn["type"] == "Polygon" and len(drawn["coordinates"][0]) == 5
    page.get_by_role("button", name="Create the order").click()
    page.wait_for_url(f"**/people/{seeded.person_id}")
    assert page.locator("h3", has_text="Community order").count() == 1
    assert "Town centre" in page.content()


def test_an_order_is_varied_with_a_reason_and_an_uploaded_zone_without_javascript(
    chromium: Any, live_server: str, sign_in: Any, seeded: Any, tmp_path: Any
) -> None:
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, *MANAGER)
        page.goto(f"/people/{seeded.person_id}")
        page.get_by_role("link", name="Vary this order").first.click()
        with page.expect_navigation():
            page.get_by_role("button", name="Save the changes").click()
        assert (
            "Enter why the order is changing" in page.locator(".govuk-error-summary").inner_text()
        )
        kml = tmp_path / "zone.kml"
        kml.write_text(
            '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><Polygon><outerBoundaryIs>'
            "<LinearRing><coordinates>-0.12,51.50 -0.11,51.50 -0.11,51.51 -0.12,51.50"
            "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>"
        )
        page.get_by_label("Why is the order changing?").fill("Court added an exclusion zone")
        page.get_by_label("Zone name").fill("Westminster")
        page.get_by_label("Or upload the zone (GeoJSON or KML)").set_input_files(str(kml))
        with page.expect_navigation():
            page.get_by_role("button", name="Save the changes").click()
        assert page.locator(".govuk-error-summary").count() == 0, page.locator("main").inner_text()[
            :500
        ]
        assert "Westminster" in page.content()
        assert (
            "Court added an exclusion zone"
            in page.locator("table", has_text="Change history").first.inner_text()
        )
    finally:
        context.close()


def test_alerts_can_be_acknowledged_without_javascript(
    chromium: Any, live_server: str, sign_in: Any, seeded: Any
) -> None:
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "officer1", "officer1-test-password")
        page.goto(f"/alerts/{seeded.open_alert_ids[1]}")
        with page.expect_navigation():
            page.get_by_role("button", name="Acknowledge alert").click()
        assert "by officer1" in page.locator(".govuk-summary-list").inner_text()
    finally:
        context.close()
