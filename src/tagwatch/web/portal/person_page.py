"""A person's page: details, orders and their history, curfew, zones, devices, compliance."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.permissions import confirms_caller_in_its_reads, require
from tagwatch.access.principal import Principal
from tagwatch.alerts import scope as alert_scope
from tagwatch.alerts.repository import person_alert_history
from tagwatch.cases.repository import order_views
from tagwatch.compliance.repository import ViolationRow, person_violations_since
from tagwatch.compliance.summary import compliance_summary
from tagwatch.db.base import utcnow
from tagwatch.telemetry.repository import last_record_times
from tagwatch.web.portal import people
from tagwatch.web.portal.charts import bar_chart_svg, bucket_by_day
from tagwatch.web.portal.glance import glance_for
from tagwatch.web.portal.render import json_script, read_page, render
from tagwatch.web.portal.timetable import week_hours, week_rows

router = APIRouter(include_in_schema=False)

SUMMARY_DAYS = 28
TIMELINE_ITEMS = 60
ORDER_COLOURS = {
    "active": "green",
    "awaiting_fitting": "orange",
    "suspended": "yellow",
    "ended": "grey",
    "draft": "blue",
    "submitted": "blue",
}


def _row(key: str, value: str) -> dict[str, Any]:
    return {"key": {"text": key}, "value": {"text": value}}


def _details(person: Any) -> list[dict[str, Any]]:
    aliases = ", ".join(f"{n.given} {n.family}" for n in person.names if n.kind != "primary")
    rows = [
        _row("Date of birth", person.date_of_birth.strftime("%-d %B %Y")),
        _row("CRN", person.crn or "Not recorded"),
        _row("PNC", person.pnc or "Not recorded"),
        _row("NOMIS", person.nomis or "Not recorded"),
        _row("Other names", aliases or "None"),
        _row("Sex", people.humanise(person.sex)),
        _row("Gender", people.humanise(person.gender)),
        _row("Nationality", person.nationality),
        _row(
            "Language",
            person.language + (" (interpreter needed)" if person.interpreter_needed else ""),
        ),
    ]
    for address in person.addresses:
        rows.append(_row("Address", f"{address.line1}, {address.town} {address.postcode}"))
    return rows


def _timeline(
    session: Session,
    principal: Principal,
    person: Any,
    orders: list[Any],
    violations: list[ViolationRow],
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if principal.has("compliance:read"):
        for v in violations[:TIMELINE_ITEMS]:
            items.append(
                {
                    "at": v.start,
                    "title": f"Violation: {people.rule_label(v.rule_id)}",
                    "text": (
                        "Ongoing"
                        if v.end is None
                        else f"Ended {v.end.astimezone(people.LONDON):%-d %b %H:%M}"
                    )
                    + f" ({v.status})",
                }
            )
    if principal.has("alert:read"):
        found = person_alert_history(
            session, alert_scope.visible_to(principal), person.id, TIMELINE_ITEMS
        )
        for alert in found:
            items.append(
                {
                    "at": alert.raised_at,
                    "title": f"Alert raised: {alert.summary}",
                    "href": f"/alerts/{alert.id}",
                }
            )
            if alert.acknowledged_at:
                items.append(
                    {
                        "at": alert.acknowledged_at,
                        "title": "Alert acknowledged",
                        "by": alert.acknowledged_by,
                        "href": f"/alerts/{alert.id}",
                    }
                )
            if alert.escalated_at:
                items.append(
                    {
                        "at": alert.escalated_at,
                        "title": "Alert escalated",
                        "href": f"/alerts/{alert.id}",
                    }
                )
            if alert.outcome_at:
                items.append(
                    {
                        "at": alert.outcome_at,
                        "title": f"Outcome: {people.humanise(alert.outcome)}",
                        "by": alert.outcome_by,
                        "text": alert.outcome_note,
                        "href": f"/alerts/{alert.id}",
                    }
                )
    for order in orders:
        for version in order.versions:
            items.append(
                {
                    "at": version.at,
                    "title": f"Order {order.ref} version {version.version}",
                    "by": version.by,
                    "text": version.reason,
                }
            )
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:TIMELINE_ITEMS]


@router.get("/people/{person_id}", response_class=HTMLResponse)
@confirms_caller_in_its_reads
async def person_page(
    request: Request, person_id: int, principal: Principal = require("person:read")
) -> Response:
    return await read_page(
        request, principal, lambda session, caller: _page(request, session, caller, person_id)
    )


def _page(request: Request, session: Session, principal: Principal, person_id: int) -> Response:
    record(session, principal, "person.view", subject_type="person", subject_id=person_id)
    person = people.person_view_or_404(session, principal, person_id)
    now = utcnow()
    start = now - dt.timedelta(days=SUMMARY_DAYS)
    label = people.label_of(person)
    orders = order_views(session, principal, person.id)
    glance = glance_for(session, [person.id])[person.id]
    allocations = [a for order in orders for a in order.allocations]
    seen = (
        last_record_times(session, [a.id for a in allocations])
        if principal.has("device:read")
        else {}
    )
    can_see_location = principal.has("location:read")
    violations: list[ViolationRow] = []
    summary = None
    if principal.has("compliance:read"):
        # The summary and the timeline show the same violations: read once.
        violations = person_violations_since(session, person.id, start)
        summary = compliance_summary(session, person.id, start, now, violations)
    chart = bucket_by_day(summary.violations_by_day if summary else {}, start, now)
    curfews = [c for order in orders for c in order.conditions if c.type == "curfew"]
    curfew_weeks = {}
    for condition in curfews:
        rows = week_rows(condition.timetable or [])
        curfew_weeks[condition.id] = {"rows": rows, "total": week_hours(rows)}
    zones = people.zones_of(orders)
    glance_rows = [
        _row("Open violations", str(glance.open_violations)),
        _row("Unacknowledged alerts", str(glance.unacknowledged_alerts)),
        _row(
            "Device",
            (
                f"Last seen {glance.last_seen.astimezone(people.LONDON):%-d %b %Y %H:%M}"
                if glance.last_seen
                else glance.device_status
            )
            + (" – no recent data" if glance.stale(now) else ""),
        ),
    ]
    summary_rows = []
    if summary:
        c = summary.curfew
        summary_rows = [
            _row("Curfew hours scheduled", f"{c.scheduled_hours:g}"),
            _row(
                "Curfew hours kept",
                f"{c.kept_hours:g}"
                + (
                    f" ({100 * c.kept_hours / c.scheduled_hours:.0f}%)" if c.scheduled_hours else ""
                ),
            ),
            _row("Hours absent during curfew", f"{c.absent_hours:g}"),
            _row("Hours excused (authorised absence)", f"{c.excused_hours:g}"),
        ]
    return render(
        request,
        "portal/person.html",
        {
            "title": label,
            "uses_map": can_see_location and bool(zones),
            "person": person,
            "label": label,
            "glance": glance_rows,
            "details": _details(person),
            "orders": orders,
            "order_colours": ORDER_COLOURS,
            "curfew_weeks": curfew_weeks,
            "can_trail": can_see_location,
            "can_create_order": principal.has("order:write"),
            "can_vary_order": principal.has("order:write"),
            "show_zones_map": can_see_location and bool(zones),
            "zones_json": json_script(
                "zones-data",
                {
                    "zones": [z for z in zones if z["kind"] != "curfew_address"],
                    "addresses": people.curfew_addresses(orders),
                },
            ),
            "devices": [
                {
                    "type": a.device.type,
                    "serial": a.device.serial,
                    "model": a.device.model,
                    "batch": a.device.batch,
                    "fitted_at": a.fitted_at,
                    "removed_at": a.removed_at,
                    "last_seen": seen.get(a.id, (None, None))[0],
                }
                for a in sorted(allocations, key=lambda a: a.fitted_at, reverse=True)
            ]
            if principal.has("device:read")
            else [],
            "summary_days": SUMMARY_DAYS,
            "summary_rows": summary_rows,
            "chart": chart,
            "chart_svg": bar_chart_svg(chart),
            "chart_peak": max([sum(v) for v in chart.counts.values()] or [1]),
            "rule_label": people.rule_label,
            "timeline": _timeline(session, principal, person, orders, violations),
        },
    )
