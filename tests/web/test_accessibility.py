"""Every portal page through axe, in each state a user meets it in (errors included).

The first test fails when a portal page is added without a place in this walk, so a new page
cannot skip the accessibility check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from tagwatch.cases.models import Order
from tagwatch.db.engine import unit_of_work
from tagwatch.london import LONDON
from tagwatch.web.pages import router
from tagwatch.web.portal.period import FIELD_FORMAT

MANAGER = ("manager1", "manager1-test-password")
# Route -> (how to reach it from the seeded world, what shows it is ready for axe).
Visit = tuple[Callable[[Any, str], list[str]], str | None]


def _trail(seeded: Any, _ref: str) -> list[str]:
    period = (
        f"from={quote(seeded.trail_start.astimezone(LONDON).strftime(FIELD_FORMAT))}"
        f"&to={quote(seeded.trail_end.astimezone(LONDON).strftime(FIELD_FORMAT))}"
    )
    return [f"/people/{seeded.person_id}/trail?{period}"]


PAGES: dict[str, Visit] = {
    "/caseload": (
        lambda s, _: ["/caseload", "/caseload?q=O%27Neil", "/caseload?dob-day=31&dob-month=2"],
        None,
    ),
    "/people/{person_id}": (
        lambda s, _: [f"/people/{s.person_id}", f"/people/{s.plain_person_id}", "/people/0"],
        None,
    ),
    "/people/{person_id}/trail": (_trail, "#trail-player[data-ready=true]"),
    "/live": (lambda s, _: ["/live"], "#live-map[data-ready=true]"),
    "/alerts": (
        lambda s, _: [f"/alerts?view={v}" for v in ("open", "acknowledged", "escalated")],
        None,
    ),
    "/alerts/{alert_id}": (
        lambda s, _: [f"/alerts/{s.tamper_alert_id}", f"/alerts/{s.open_alert_ids[0]}"],
        None,
    ),
    "/people/{person_id}/orders/new": (
        lambda s, _: [f"/people/{s.person_id}/orders/new"],
        "#zone-map[data-ready=true]",
    ),
    "/orders/{ref}/vary": (lambda s, ref: [f"/orders/{ref}/vary"], "#zone-map[data-ready=true]"),
}


def _portal_pages() -> set[str]:
    return {
        ctx.path
        for ctx in iter_route_contexts(router.routes)
        if isinstance(ctx.original_route, APIRoute)
        and "GET" in (ctx.methods or ())
        and ctx.original_route.response_class is HTMLResponse
    }


def test_every_portal_page_is_in_the_accessibility_walk() -> None:
    assert _portal_pages() == set(PAGES)


def test_every_portal_page_passes_axe(
    page: Any, sign_in: Any, seeded: Any, server_sessions: Any, axe_violations: Any
) -> None:
    with unit_of_work(server_sessions) as session:
        order_ref = session.scalar(select(Order.ref).where(Order.person_id == seeded.person_id))
    assert order_ref is not None
    found: dict[str, list[dict[str, Any]]] = {}

    def check(url: str, ready: str | None = None) -> None:
        page.goto(url)
        if ready:
            page.locator(ready).wait_for()
        if violations := axe_violations(page):
            found[url] = violations

    check("/sign-in")
    page.get_by_label("Username").fill(MANAGER[0])
    page.get_by_label("Password", exact=True).fill("not-the-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    if violations := axe_violations(page):
        found["/sign-in (refused)"] = violations
    sign_in(page, *MANAGER)
    for reach, ready in PAGES.values():
        for url in reach(seeded, order_ref):
            # An error page (404, a form refused) has no map to wait for.
            check(url, ready if "dob-day" not in url and not url.endswith("/0") else None)
    assert found == {}
