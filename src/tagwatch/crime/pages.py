"""Crime mapping pages: the hub receives batches, runs the matcher, reviews and authorises
matches on a map; a police force sees its own batches and the matches released to it.

Force scoping is applied in the repository, so a page never shows what the caller's scope
hides; seeing a match's track (location data) and asking where a person was are audited.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.crime import evidence, service
from tagwatch.crime import repository as repo
from tagwatch.crime.api import REVIEW_STATES, RUN_LIMITS, evidence_response
from tagwatch.crime.matcher import MatchParams
from tagwatch.db.deps import DbSession
from tagwatch.telemetry.epoch import to_ms
from tagwatch.web.portal.render import json_script, render

router = APIRouter(prefix="/crime", include_in_schema=False)

PAGE_SIZE = 50
MATCH_PAGE_SIZE = 100
# A police file of a day's crimes is well under this; a larger upload is refused unread.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BATCH_STATUS = {
    "successful": ("Successful", "green"),
    "partial": ("Partly accepted", "yellow"),
    "error": ("No valid rows", "red"),
    "failed": ("Failed", "red"),
}
MATCH_STATE = {
    "unreviewed": ("To review", "grey"),
    "qualified": ("Qualified", "blue"),
    "authorised": ("Authorised", "green"),
    "dismissed": ("Dismissed", "orange"),
}
RUN_FIELDS = {
    "radius_m": ("radius", "metres"),
    "tolerance_s": ("tolerance", "seconds"),
    "max_gap_s": ("maximum gap", "seconds"),
}
WHERE_FIELDS = ("person", "crime", "force", "radius_m", "purpose")


# --- helpers -----------------------------------------------------------------------------------


def _page_number(request: Request) -> int:
    """The `page` query parameter; anything unreadable is the first page."""
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


def _pagination(
    path: str, query: dict[str, str], page: int, total: int, size: int
) -> dict[str, object] | None:
    """GOV.UK pagination for a list of `total` items shown `size` at a time."""
    pages = max(1, math.ceil(total / size))
    if pages == 1:
        return None

    def href(number: int) -> str:
        return f"{path}?{urlencode({**query, 'page': str(number)})}"

    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    items: list[dict[str, object]] = []
    for i, number in enumerate(shown):
        if i and number - shown[i - 1] > 1:
            items.append({"ellipsis": True})
        items.append({"number": number, "href": href(number), "current": number == page})
    result: dict[str, object] = {"items": items}
    if page > 1:
        result["previous"] = {"href": href(page - 1)}
    if page < pages:
        result["next"] = {"href": href(page + 1)}
    return result


def _errors(field_errors: dict[str, str]) -> list[dict[str, str]]:
    return [{"text": text, "href": f"#{key}"} for key, text in field_errors.items()]


def _abilities(principal: Principal) -> dict[str, object]:
    return {
        "can_upload": principal.has("crime:upload"),
        "can_match": principal.has("crime:match"),
        "can_review": principal.has("crime:review"),
        "can_authorise": principal.has("crime:authorise"),
        "can_evidence": principal.has("crime:evidence"),
        "is_police": principal.force_code is not None,
        "batch_status_labels": BATCH_STATUS,
        "match_state_labels": MATCH_STATE,
    }


def _batch_or_404(session: DbSession, principal: Principal, batch_id: int) -> service.BatchSummary:
    try:
        return service.get_batch(session, batch_id, principal, with_errors=False)
    except service.NotFound as missing:
        raise HTTPException(404, "There is no such batch you can see") from missing


def _batch_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    batch: service.BatchSummary,
    tab: str,
    context: dict[str, object],
    status_code: int = 200,
    runs: list[service.RunSummary] | None = None,
) -> Response:
    if runs is None:
        runs = service.batch_runs(session, batch.batch_id, principal)
    title = f"Batch {batch.batch_ref or batch.batch_id}"
    return render(
        request,
        "crime/batch.html",
        {
            "title": f"{title} – {context.get('tab_title', tab.capitalize())}",
            "heading": title,
            "batch": batch,
            "tab": tab,
            "run_count": len(runs),
            "runs": runs,
            "received": request.query_params.get("received") == "1",
            **_abilities(principal),
            **context,
        },
        status_code=status_code,
    )


# --- batches -------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def batches(
    request: Request, session: DbSession, principal: Principal = require("crime:read")
) -> Response:
    page = _page_number(request)
    total = service.count_batches(session, principal)
    found = service.list_batches(session, principal, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "crime/batches.html",
        {
            "title": "Crime mapping",
            "batches": found,
            "total": total,
            "pagination": _pagination("/crime", {}, page, total, PAGE_SIZE),
            **_abilities(principal),
        },
    )


def _upload_form(
    request: Request,
    session: DbSession,
    principal: Principal,
    values: dict[str, str],
    field_errors: dict[str, str],
) -> Response:
    forces = sorted(repo.reference_codes(session, "police_force") or [])
    return render(
        request,
        "crime/upload.html",
        {
            "title": "Upload a crime file",
            "forces": forces,
            "values": values,
            "field_errors": field_errors,
            "errors": _errors(field_errors),
            "max_megabytes": MAX_UPLOAD_BYTES // (1024 * 1024),
            **_abilities(principal),
        },
        status_code=400 if field_errors else 200,
    )


@router.get("/upload", response_class=HTMLResponse)
def upload_form(
    request: Request, session: DbSession, principal: Principal = require("crime:upload")
) -> Response:
    return _upload_form(request, session, principal, {}, {})


@router.post("/batches", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: DbSession,
    principal: Principal = require("crime:upload"),
) -> Response:
    form = await request.form()
    upload = form.get("file")
    force = str(form.get("force") or "").strip().upper()
    values = {"force": force}
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _upload_form(
            request, session, principal, values, {"file": "Select the police crime file (CSV)"}
        )
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        message = f"The file must be smaller than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
        return _upload_form(request, session, principal, values, {"file": message})
    if not data:
        return _upload_form(request, session, principal, values, {"file": "The file is empty"})
    try:
        summary = service.import_batch(
            session,
            data,
            file_name=upload.filename,
            principal=principal,
            expected_force=force or None,
        )
    except service.CrimeError as refused:
        return _upload_form(request, session, principal, values, {"force": refused.reason})
    return RedirectResponse(f"/crime/batches/{summary.batch_id}?received=1", status_code=303)


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_matches(
    request: Request,
    batch_id: int,
    session: DbSession,
    principal: Principal = require("crime:read"),
) -> Response:
    batch = _batch_or_404(session, principal, batch_id)
    runs = service.batch_runs(session, batch_id, principal)
    chosen = batch.run
    wanted = request.query_params.get("run", "")
    if wanted.isdigit():
        chosen = next(
            (r for r in runs if r.run_id == int(wanted) and r.status == "success"), chosen
        )
    state = request.query_params.get("state", "")
    state = state if state in REVIEW_STATES else ""
    page = _page_number(request)
    matches: list[service.MatchRow] = []
    counts: dict[str, int] = {}
    if chosen is not None:
        counts = service.review_counts(session, batch_id, principal, chosen.run_id)
        matches = service.batch_matches(
            session,
            batch_id,
            principal,
            run_id=chosen.run_id,
            review_state=state or None,
            limit=MATCH_PAGE_SIZE,
            offset=(page - 1) * MATCH_PAGE_SIZE,
        )
    shown_total = counts.get(state, 0) if state else sum(counts.values())
    query = {k: v for k, v in (("run", wanted if wanted.isdigit() else ""), ("state", state)) if v}
    return _batch_page(
        request,
        session,
        principal,
        batch,
        "matches",
        {
            "tab_title": "Matches",
            "chosen_run": chosen,
            "is_latest_run": chosen is not None
            and batch.run is not None
            and chosen.run_id == batch.run.run_id,
            "matches": matches,
            "counts": counts,
            "state": state,
            "states": REVIEW_STATES,
            "run_query": {"run": str(chosen.run_id)} if chosen and wanted.isdigit() else {},
            "pagination": _pagination(
                f"/crime/batches/{batch_id}", query, page, shown_total, MATCH_PAGE_SIZE
            ),
        },
        runs=runs,
    )


@router.get("/batches/{batch_id}/crimes", response_class=HTMLResponse)
def batch_crimes(
    request: Request,
    batch_id: int,
    session: DbSession,
    principal: Principal = require("crime:read"),
) -> Response:
    return _listing_tab(request, session, principal, batch_id, "crimes", service.batch_crimes)


@router.get("/batches/{batch_id}/errors", response_class=HTMLResponse)
def batch_errors(
    request: Request,
    batch_id: int,
    session: DbSession,
    principal: Principal = require("crime:read"),
) -> Response:
    return _listing_tab(
        request,
        session,
        principal,
        batch_id,
        "errors",
        service.batch_row_errors,
        key="row_errors",
    )


def _listing_tab(
    request: Request,
    session: DbSession,
    principal: Principal,
    batch_id: int,
    tab: str,
    fetch: Callable[..., Any],
    key: str | None = None,
) -> Response:
    """A batch tab that lists one page of rows (`fetch` answers with `.total`)."""
    batch = _batch_or_404(session, principal, batch_id)
    page = _page_number(request)
    found = fetch(session, batch_id, principal, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return _batch_page(
        request,
        session,
        principal,
        batch,
        tab,
        {
            key or tab: found,
            "pagination": _pagination(
                f"/crime/batches/{batch_id}/{tab}", {}, page, found.total, PAGE_SIZE
            ),
        },
    )


def _runs_tab(
    request: Request,
    session: DbSession,
    principal: Principal,
    batch: service.BatchSummary,
    values: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
) -> Response:
    defaults = MatchParams()
    values = values or {
        "radius_m": f"{defaults.radius_m:g}",
        "tolerance_s": f"{defaults.tolerance_s:g}",
        "max_gap_s": f"{defaults.max_gap_s:g}",
    }
    return _batch_page(
        request,
        session,
        principal,
        batch,
        "runs",
        {
            "values": values,
            "limits": RUN_LIMITS,
            "field_errors": field_errors or {},
            "errors": _errors(field_errors or {}),
        },
        status_code=400 if field_errors else 200,
    )


@router.get("/batches/{batch_id}/runs", response_class=HTMLResponse)
def batch_runs(
    request: Request,
    batch_id: int,
    session: DbSession,
    principal: Principal = require("crime:read"),
) -> Response:
    return _runs_tab(request, session, principal, _batch_or_404(session, principal, batch_id))


def _run_params(values: dict[str, str]) -> tuple[MatchParams | None, dict[str, str]]:
    numbers: dict[str, float] = {}
    field_errors: dict[str, str] = {}
    for name, (label, unit) in RUN_FIELDS.items():
        text = values.get(name, "")
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not text:
            field_errors[name] = f"Enter the {label} in {unit}"
        elif not math.isfinite(number) or not 0 <= number <= RUN_LIMITS[name]:
            field_errors[name] = (
                f"The {label} must be a number of {unit} from 0 to {RUN_LIMITS[name]:g}"
            )
        else:
            numbers[name] = number
    if field_errors:
        return None, field_errors
    return MatchParams(**numbers), {}


@router.post("/batches/{batch_id}/runs", response_class=HTMLResponse)
def run_matching(
    request: Request,
    batch_id: int,
    session: DbSession,
    radius_m: Annotated[str, Form()] = "",
    tolerance_s: Annotated[str, Form()] = "",
    max_gap_s: Annotated[str, Form()] = "",
    principal: Principal = require("crime:match"),
) -> Response:
    batch = _batch_or_404(session, principal, batch_id)
    values = {
        "radius_m": radius_m.strip(),
        "tolerance_s": tolerance_s.strip(),
        "max_gap_s": max_gap_s.strip(),
    }
    params, field_errors = _run_params(values)
    if params is None:
        return _runs_tab(request, session, principal, batch, values, field_errors)
    run = service.run_matching(session, batch_id, principal=principal, params=params)
    return RedirectResponse(f"/crime/batches/{batch_id}?run={run.run_id}", status_code=303)


# --- one match -----------------------------------------------------------------------------------


def _map_data(data: evidence.MatchEvidence) -> dict[str, object]:
    """What the match map draws; the page's tables carry the same without JavaScript."""
    m, v, c = data.record.match, data.record.version, data.record.crime
    return {
        "crime": {"lat": v.latitude, "lon": v.longitude, "ref": c.crime_ref},
        "radius_m": data.run.radius_m,
        "closest": {
            "lat": m.closest_latitude,
            "lon": m.closest_longitude,
            "t_ms": to_ms(m.closest_time),
            "distance_m": round(m.closest_distance_m, 1),
        },
        "window": [to_ms(data.window[0]), to_ms(data.window[1])],
        # [t_ms, lat, lon, accuracy_m, label, joined to the next, before/in/after the window]
        "points": [
            [
                to_ms(p.t),
                p.latitude,
                p.longitude,
                p.accuracy_m,
                p.label,
                p.joined_to_next,
                p.window,
            ]
            for p in data.track
        ],
    }


def _match_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    match_id: int,
    field_errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    try:
        data = evidence.view_match(session, match_id, principal)
    except service.NotFound as missing:
        raise HTTPException(404, "There is no such match you can see") from missing
    match = data.record.match
    state = "authorised" if match.authorised_at else match.review_state
    field_errors = field_errors or {}
    return render(
        request,
        "crime/match.html",
        {
            "title": f"Match – crime {data.record.crime.crime_ref}, {match.person_ref}",
            "uses_map": True,
            "data": data,
            "match": match,
            "version": data.record.version,
            "crime": data.record.crime,
            "batch": data.record.batch,
            "run": data.run,
            "state": state,
            "passes": data.passes,
            "in_radius": [p for p in data.track if p.label],
            "done": request.query_params.get("done", ""),
            "own_review": match.reviewed_by == principal.username,
            "map_json": json_script("match-map-data", _map_data(data)),
            "values": values or {},
            "field_errors": field_errors,
            "errors": _errors(field_errors),
            **_abilities(principal),
        },
        status_code=400 if field_errors else 200,
    )


@router.get("/matches/{match_id}", response_class=HTMLResponse)
def match_page(
    request: Request,
    match_id: int,
    session: DbSession,
    principal: Principal = require("crime:read"),
) -> Response:
    return _match_page(request, session, principal, match_id)


@router.post("/matches/{match_id}/review", response_class=HTMLResponse)
def review(
    request: Request,
    match_id: int,
    session: DbSession,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    principal: Principal = require("crime:review"),
) -> Response:
    values = {"decision": decision, "reason": reason}
    field_errors: dict[str, str] = {}
    if decision not in service.REVIEW_DECISIONS:
        field_errors["decision"] = "Select qualify or dismiss"
    if not reason.strip():
        field_errors["reason"] = "Enter the reason for the decision"
    if not field_errors:
        try:
            service.review_match(session, match_id, principal, decision, reason)
        except service.NotFound as missing:
            raise HTTPException(404, "There is no such match you can see") from missing
        except service.CrimeError as refused:
            field_errors[refused.field] = refused.reason[:1].upper() + refused.reason[1:]
    if field_errors:
        return _match_page(request, session, principal, match_id, field_errors, values)
    return RedirectResponse(f"/crime/matches/{match_id}?done={decision}", status_code=303)


@router.post("/matches/{match_id}/authorise", response_class=HTMLResponse)
def authorise(
    request: Request,
    match_id: int,
    session: DbSession,
    principal: Principal = require("crime:authorise"),
) -> Response:
    try:
        service.authorise_match(session, match_id, principal)
    except service.NotFound as missing:
        raise HTTPException(404, "There is no such match you can see") from missing
    except service.CrimeError as refused:
        message = refused.reason[:1].upper() + refused.reason[1:]
        return _match_page(request, session, principal, match_id, {"authorise": message})
    return RedirectResponse(f"/crime/matches/{match_id}?done=authorised", status_code=303)


@router.get("/matches/{match_id}/evidence.{fmt}")
def evidence_download(
    match_id: int,
    fmt: str,
    session: DbSession,
    principal: Principal = require("crime:evidence"),
) -> Response:
    return evidence_response(session, match_id, principal, fmt)


# --- where was this person -----------------------------------------------------------------------


def _where_page(
    request: Request,
    principal: Principal,
    values: dict[str, str],
    field_errors: dict[str, str],
    answer: service.WhereAnswer | None = None,
) -> Response:
    return render(
        request,
        "crime/where.html",
        {
            "title": "Where was this person?",
            "values": values,
            "answer": answer,
            "field_errors": field_errors,
            "errors": _errors(field_errors),
            **_abilities(principal),
        },
        status_code=400 if field_errors else 200,
    )


@router.get("/where", response_class=HTMLResponse)
def where_form(request: Request, principal: Principal = require("crime:review")) -> Response:
    return _where_page(request, principal, {"radius_m": "100"}, {})


@router.post("/where", response_class=HTMLResponse)
async def where_answer(
    request: Request, session: DbSession, principal: Principal = require("crime:review")
) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in WHERE_FIELDS}
    values["force"] = values["force"].upper()
    field_errors: dict[str, str] = {}
    if not values["person"]:
        field_errors["person"] = "Enter the person's tagwatch reference"
    if not values["crime"]:
        field_errors["crime"] = "Enter the crime reference"
    try:
        radius = float(values["radius_m"] or "100")
    except ValueError:
        radius = math.nan
    if not (math.isfinite(radius) and 0 <= radius <= RUN_LIMITS["radius_m"]):
        field_errors["radius_m"] = (
            f"The radius must be a number of metres from 0 to {RUN_LIMITS['radius_m']:g}"
        )
    if not values["purpose"]:
        field_errors["purpose"] = "Enter why you are asking: the question is recorded"
    if field_errors:
        return _where_page(request, principal, values, field_errors)
    try:
        answer = service.where_was_person(
            session,
            values["person"],
            values["crime"],
            principal,
            force_code=values["force"] or None,
            params=MatchParams(radius_m=radius),
            purpose=values["purpose"],
        )
    except service.NotFound as missing:
        text = str(missing)
        key = "person" if text.startswith("person") else "crime"
        return _where_page(request, principal, values, {key: f"There is no {text} you can see"})
    except service.CrimeError as refused:
        return _where_page(request, principal, values, {refused.field: refused.reason})
    return _where_page(request, principal, values, {}, answer)
