"""Trail playback and export for one person: every view and export is audited."""

from __future__ import annotations

import datetime as dt

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.compliance.repository import find_violations, violation_query
from tagwatch.db.base import utcnow
from tagwatch.db.deps import ReadSession
from tagwatch.telemetry.repository import load_fixes
from tagwatch.web.portal import people
from tagwatch.web.portal.period import Period, parse_period
from tagwatch.web.portal.render import json_script, render
from tagwatch.web.portal.trails import EXPORT_FORMATS, GAP_MS, Trail, export

router = APIRouter(prefix="/people/{person_id}/trail", include_in_schema=False)

DEFAULT_PERIOD = dt.timedelta(hours=24)
TABLE_ROWS = 500
MAX_VIOLATIONS = 500


def load_trail(session: Session, person: people.PersonCard, period: Period) -> Trail:
    """The person's fixes in the period, across every allocation they had, in time order."""
    fixes = load_fixes(
        session, start=period.start, end=period.end, allocation_ids=person.allocation_ids
    )
    order = np.argsort(fixes.t_ms, kind="stable")
    return Trail(
        person_ref=person.ref,
        start=period.start,
        end=period.end,
        t_ms=fixes.t_ms[order],
        lat=fixes.lat[order],
        lon=fixes.lon[order],
        accuracy_m=fixes.accuracy_m[order],
    )


def _violations(
    session: Session, person_id: int, period: Period, trail: Trail
) -> list[dict[str, object]]:
    found = find_violations(
        session,
        violation_query(person_id=person_id, start=period.start, end=period.end),
        MAX_VIOLATIONS,
        0,
    )
    rows = []
    for v in found:
        start_ms = int(v.start.timestamp() * 1000)
        lat = lon = None
        if len(trail):
            nearest = int(np.argmin(np.abs(trail.t_ms - start_ms)))
            lat, lon = float(trail.lat[nearest]), float(trail.lon[nearest])
        rows.append(
            {
                "label": people.rule_label(v.rule_id),
                "start": v.start,
                "end": v.end,
                "start_ms": start_ms,
                "lat": lat,
                "lon": lon,
            }
        )
    return rows


@router.get("", response_class=HTMLResponse)
def trail_page(
    request: Request,
    person_id: int,
    session: ReadSession,
    principal: Principal = require("location:read"),
) -> Response:
    period, field_errors = parse_period(
        request.query_params.get("from"), request.query_params.get("to"), utcnow(), DEFAULT_PERIOD
    )
    record(
        session,
        principal,
        "location.trail_view",
        subject_type="person",
        subject_id=person_id,
        detail={"from": period.start, "to": period.end},
    )
    person = people.person_card(session, principal, person_id)
    context: dict[str, object] = {
        "title": f"Trail – {person.label}",
        "person_id": person_id,
        "person_label": person.label,
        "period_from": period.start_field,
        "period_to": period.end_field,
        "field_errors": field_errors,
        "errors": [{"text": text, "href": f"#{key}"} for key, text in field_errors.items()],
    }
    if field_errors:
        return render(request, "portal/trail.html", context, status_code=400)
    trail = load_trail(session, person, period)
    violations = _violations(session, person_id, period, trail)
    shown = min(len(trail), TABLE_ROWS)
    context |= {
        "uses_map": True,
        "start": period.start,
        "end": period.end,
        "fix_count": len(trail),
        "fixes_shown": shown,
        "gaps": trail.gaps(),
        "violations": violations,
        "fix_rows": [
            {
                "time": dt.datetime.fromtimestamp(int(trail.t_ms[i]) / 1000, dt.UTC),
                "lat": float(trail.lat[i]),
                "lon": float(trail.lon[i]),
                "accuracy_m": float(trail.accuracy_m[i]),
            }
            for i in range(shown)
        ],
        "trail_json": json_script(
            "trail-data",
            {
                "points": trail.player_points(),
                "gap_ms": GAP_MS,
                "start_ms": int(period.start.timestamp() * 1000),
                "end_ms": int(period.end.timestamp() * 1000),
                "zones": person.zones,
                "violations": [
                    {k: v[k] for k in ("label", "start_ms", "lat", "lon")} for v in violations
                ],
            },
        ),
    }
    return render(request, "portal/trail.html", context)


@router.get("/export.{fmt}")
def trail_export(
    request: Request,
    person_id: int,
    fmt: str,
    session: ReadSession,
    principal: Principal = require("location:export"),
) -> Response:
    if fmt not in EXPORT_FORMATS:
        raise HTTPException(404, f"format: must be one of {', '.join(EXPORT_FORMATS)}")
    period, field_errors = parse_period(
        request.query_params.get("from"), request.query_params.get("to"), utcnow(), DEFAULT_PERIOD
    )
    if field_errors:
        raise HTTPException(400, "; ".join(f"{k}: {v}" for k, v in field_errors.items()))
    record(
        session,
        principal,
        "location.trail_export",
        subject_type="person",
        subject_id=person_id,
        detail={"format": fmt, "from": period.start, "to": period.end},
    )
    person = people.person_card(session, principal, person_id)
    trail = load_trail(session, person, period)
    media_type, extension = EXPORT_FORMATS[fmt]
    filename = (
        f"{person.ref}-trail-{period.start:%Y%m%dT%H%M}Z-{period.end:%Y%m%dT%H%M}Z.{extension}"
    )
    return Response(
        export(trail, fmt),
        media_type=media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
