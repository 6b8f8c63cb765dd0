"""Data request pages: my requests, asking, the approvals queue, a request with its files."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession
from tagwatch.requests import service
from tagwatch.requests.api import file_response
from tagwatch.requests.exports import FORMATS
from tagwatch.requests.models import RequestStatus
from tagwatch.settings import settings_of
from tagwatch.web.portal.period import parse_period
from tagwatch.web.portal.render import render

router = APIRouter(prefix="/data-requests", include_in_schema=False)

STATUS_COLOURS = {"pending": "yellow", "approved": "green", "refused": "red", "expired": "grey"}
FORMAT_LABELS = {
    "pdf": "Summary with map (PDF)",
    "csv": "Positions (CSV)",
    "geojson": "Positions and track (GeoJSON)",
    "kml": "Positions and track (KML)",
}
# Where each field's error takes the reader in the error summary.
FIELD_IDS = {
    "identifier": "identifier",
    "start": "start",
    "end": "end",
    "purpose": "purpose",
    "lawful_basis": "lawful_basis",
    "crime_reference": "crime_reference",
    "reason": "reason",
    "decision": "decision",
}


def _summary(errors: dict[str, str]) -> list[dict[str, str]]:
    return [{"text": text, "href": f"#{FIELD_IDS.get(key, key)}"} for key, text in errors.items()]


def _common(principal: Principal) -> dict[str, object]:
    return {
        "status_colours": STATUS_COLOURS,
        "lawful_bases": service.LAWFUL_BASES,
        "can_create": principal.has("request:create"),
        "can_approve": principal.has("request:approve"),
    }


@router.get("", response_class=HTMLResponse)
def my_requests(
    request: Request, session: DbSession, principal: Principal = require("request:read")
) -> Response:
    found = service.list_requests(session, principal, mine=True)
    return render(
        request,
        "requests/list.html",
        {"title": "Location data requests", "requests": found, **_common(principal)},
    )


@router.get("/approvals", response_class=HTMLResponse)
def approvals(
    request: Request, session: DbSession, principal: Principal = require("request:approve")
) -> Response:
    found = [
        r
        for r in service.list_requests(session, principal, status=RequestStatus.PENDING)
        if r.requester_username != principal.username
    ]
    return render(
        request,
        "requests/approvals.html",
        {"title": "Data requests to decide", "requests": found, **_common(principal)},
    )


def _new_form(
    request: Request,
    principal: Principal,
    session: DbSession,
    form: dict[str, str],
    errors: dict[str, str],
) -> Response:
    settings = settings_of(session)
    return render(
        request,
        "requests/new.html",
        {
            "title": "Ask for location data",
            "form": form,
            "field_errors": errors,
            "errors": _summary(errors),
            "max_days": f"{settings.data_request_max_days:g}",
            "is_police": principal.force_code is not None,
            **_common(principal),
        },
        status_code=400 if errors else 200,
    )


@router.get("/new", response_class=HTMLResponse)
def new_request(
    request: Request, session: DbSession, principal: Principal = require("request:create")
) -> Response:
    return _new_form(request, principal, session, {}, {})


@router.post("", response_class=HTMLResponse)
async def create(
    request: Request, session: DbSession, principal: Principal = require("request:create")
) -> Response:
    form = {k: str(v).strip() for k, v in (await request.form()).items() if k != "csrf_token"}
    errors: dict[str, str] = {}
    for key, label in (("start", "the start"), ("end", "the end")):
        if not form.get(key):
            errors[key] = f"Enter {label} of the period"
    start = end = None
    if not errors:
        period, period_errors = parse_period(
            form["start"], form["end"], utcnow(), dt.timedelta(days=1)
        )
        errors |= {{"from": "start", "to": "end"}[k]: v for k, v in period_errors.items()}
        start, end = period.start, period.end
    try:
        created = service.create_request(
            session,
            principal,
            service.NewRequest(
                identifier=form.get("identifier", ""),
                start=start,
                end=end,
                purpose=form.get("purpose", ""),
                lawful_basis=form.get("lawful_basis", ""),
                crime_reference=form.get("crime_reference"),
            ),
        )
    except service.RequestError as error:
        errors = error.errors | errors
    if errors:
        return _new_form(request, principal, session, form, errors)
    return RedirectResponse(f"/data-requests/{created.id}", status_code=303)


def _detail(
    request: Request,
    session: DbSession,
    principal: Principal,
    request_id: int,
    errors: dict[str, str] | None = None,
) -> Response:
    try:
        found = service.get_request(session, principal, request_id)
    except service.RequestNotFound as missing:
        raise HTTPException(404, str(missing)) from missing
    mine = found.requester_username == principal.username
    now = utcnow()
    downloadable = (
        mine
        and found.status == RequestStatus.APPROVED
        and found.expires_at is not None
        and found.expires_at > now
    )
    return render(
        request,
        "requests/detail.html",
        {
            "title": f"Data request {found.id}",
            "item": found,
            "mine": mine,
            "can_decide": principal.has("request:approve")
            and not mine
            and found.status == RequestStatus.PENDING,
            "files": [f for f in found.files if f.deleted_at is None] if downloadable else [],
            "format_labels": FORMAT_LABELS,
            "field_errors": errors or {},
            "errors": _summary(errors or {}),
            **_common(principal),
        },
        status_code=400 if errors else 200,
    )


@router.get("/{request_id}", response_class=HTMLResponse)
def detail(
    request: Request,
    request_id: int,
    session: DbSession,
    principal: Principal = require("request:read"),
) -> Response:
    return _detail(request, session, principal, request_id)


@router.post("/{request_id}/decision", response_class=HTMLResponse)
async def decide(
    request: Request,
    request_id: int,
    session: DbSession,
    principal: Principal = require("request:approve"),
) -> Response:
    form = await request.form()
    decision, reason = str(form.get("decision", "")), str(form.get("reason", ""))
    if decision not in ("approve", "refuse"):
        return _detail(
            request, session, principal, request_id, {"decision": "Choose approve or refuse"}
        )
    act = service.approve if decision == "approve" else service.refuse
    try:
        act(session, principal, request_id, reason)
    except service.RequestNotFound as missing:
        raise HTTPException(404, str(missing)) from missing
    except service.RequestError as error:
        return _detail(request, session, principal, request_id, error.errors)
    return RedirectResponse(f"/data-requests/{request_id}", status_code=303)


@router.get("/{request_id}/files/{fmt}")
def download(
    request_id: int,
    fmt: str,
    session: DbSession,
    principal: Principal = require("request:read"),
) -> Response:
    if fmt not in FORMATS:
        raise HTTPException(404, f"format: must be one of {', '.join(FORMATS)}")
    return file_response(session, principal, request_id, fmt)
