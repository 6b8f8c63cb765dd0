"""The practitioners' portal: caseload, a person's page, trails, the live map, alerts, orders."""

from __future__ import annotations

from fastapi import APIRouter

from tagwatch.web.portal import alerts_inbox, caseload, live, orders, person_page, trail_pages

router = APIRouter(include_in_schema=False)
for part in (caseload, person_page, trail_pages, live, alerts_inbox, orders):
    router.include_router(part.router)
