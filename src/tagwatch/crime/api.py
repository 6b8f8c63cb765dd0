"""JSON API for crime mapping under /api/v1/crime. Police callers are scoped to their force."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, UploadFile, status
from pydantic import BaseModel, Field

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.crime import evidence, service
from tagwatch.crime.matcher import MatchParams
from tagwatch.db.deps import DbSession

router = APIRouter(prefix="/crime", tags=["crime"])

# The largest radius (m), tolerance (s) and join limit (s) a run accepts; pages use them too.
RUN_LIMITS = {"radius_m": 5000.0, "tolerance_s": 86_400.0, "max_gap_s": 86_400.0}
REVIEW_STATES = ("unreviewed", "qualified", "authorised", "dismissed")


class RunRequest(BaseModel):
    radius_m: float = Field(100.0, ge=0, le=RUN_LIMITS["radius_m"])
    tolerance_s: float = Field(0.0, ge=0, le=RUN_LIMITS["tolerance_s"])
    max_gap_s: float = Field(600.0, ge=0, le=RUN_LIMITS["max_gap_s"])
    up_to_record_id: int | None = Field(None, description="Repeat a run on its snapshot")


class ReviewRequest(BaseModel):
    decision: str = Field(description="qualified or dismissed")
    reason: str = Field(min_length=1, max_length=2000)


class WhereOut(BaseModel):
    answer: str
    detail: service.WhereAnswer


def _not_found(exc: service.NotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Not found: {exc}")


def _refused(exc: service.CrimeError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


@router.post("/batches", response_model=service.BatchSummary, status_code=201)
async def upload_batch(
    file: UploadFile,
    session: DbSession,
    principal: Annotated[Principal, require("crime:upload")],
    force: Annotated[str | None, Query(description="Force code every row must carry")] = None,
) -> service.BatchSummary:
    data = await file.read()
    try:
        return service.import_batch(
            session,
            data,
            file_name=file.filename or "upload.csv",
            principal=principal,
            expected_force=force,
        )
    except service.CrimeError as exc:
        raise _refused(exc) from exc


@router.get("/batches", response_model=list[service.BatchSummary])
def list_batches(
    session: DbSession,
    principal: Annotated[Principal, require("crime:read")],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[service.BatchSummary]:
    return service.list_batches(session, principal, limit=limit, offset=offset)


@router.get("/batches/{batch_id}", response_model=service.BatchSummary)
def get_batch(
    batch_id: int, session: DbSession, principal: Annotated[Principal, require("crime:read")]
) -> service.BatchSummary:
    try:
        return service.get_batch(session, batch_id, principal)
    except service.NotFound as exc:
        raise _not_found(exc) from exc


@router.post("/batches/{batch_id}/runs", response_model=service.RunSummary, status_code=201)
def run_batch(
    batch_id: int,
    body: RunRequest,
    session: DbSession,
    principal: Annotated[Principal, require("crime:match")],
) -> service.RunSummary:
    try:
        params = MatchParams(body.radius_m, body.tolerance_s, body.max_gap_s)
        return service.run_matching(
            session,
            batch_id,
            principal=principal,
            params=params,
            up_to_record_id=body.up_to_record_id,
        )
    except service.NotFound as exc:
        raise _not_found(exc) from exc


@router.get("/batches/{batch_id}/runs", response_model=list[service.RunSummary])
def batch_runs(
    batch_id: int, session: DbSession, principal: Annotated[Principal, require("crime:read")]
) -> list[service.RunSummary]:
    try:
        return service.batch_runs(session, batch_id, principal)
    except service.NotFound as exc:
        raise _not_found(exc) from exc


@router.get("/batches/{batch_id}/matches", response_model=list[service.MatchRow])
def batch_matches(
    batch_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("crime:read")],
    run_id: int | None = None,
    purpose: str | None = None,
    review_state: Annotated[
        str | None, Query(pattern="^(" + "|".join(REVIEW_STATES) + ")$")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[service.MatchRow]:
    try:
        return service.batch_matches(
            session,
            batch_id,
            principal,
            run_id=run_id,
            purpose=purpose,
            review_state=review_state,
            limit=limit,
            offset=offset,
        )
    except service.NotFound as exc:
        raise _not_found(exc) from exc


@router.get("/batches/{batch_id}/matches.csv", response_class=Response)
def export_matches(
    batch_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("crime:read")],
    purpose: str | None = None,
) -> Response:
    try:
        text = service.export_matches(session, batch_id, principal, purpose=purpose)
    except service.NotFound as exc:
        raise _not_found(exc) from exc
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="crime-matches-{batch_id}.csv"'},
    )


@router.get("/matches/{match_id}", response_model=service.MatchRow)
def get_match(
    match_id: int, session: DbSession, principal: Annotated[Principal, require("crime:read")]
) -> service.MatchRow:
    try:
        return service.get_match(session, match_id, principal)
    except service.NotFound as exc:
        raise _not_found(exc) from exc


@router.post("/matches/{match_id}/review", response_model=service.MatchRow)
def review_match(
    match_id: int,
    body: ReviewRequest,
    session: DbSession,
    principal: Annotated[Principal, require("crime:review")],
) -> service.MatchRow:
    try:
        return service.review_match(session, match_id, principal, body.decision, body.reason)
    except service.NotFound as exc:
        raise _not_found(exc) from exc
    except service.CrimeError as exc:
        raise _refused(exc) from exc


@router.post("/matches/{match_id}/authorise", response_model=service.MatchRow)
def authorise_match(
    match_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("crime:authorise")],
) -> service.MatchRow:
    try:
        return service.authorise_match(session, match_id, principal)
    except service.NotFound as exc:
        raise _not_found(exc) from exc
    except service.CrimeError as exc:
        raise _refused(exc) from exc


def evidence_response(
    session: DbSession,
    match_id: int,
    principal: Principal,
    fmt: str,
    purpose: str | None = None,
) -> Response:
    """The evidence pack of a match as a download (shared with the pages)."""
    if fmt not in evidence.PACK_FORMATS:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"format: must be one of {', '.join(evidence.PACK_FORMATS)}"
        )
    try:
        document = evidence.evidence_pack(session, match_id, principal, fmt=fmt, purpose=purpose)
    except service.NotFound as exc:
        raise _not_found(exc) from exc
    except service.CrimeError as exc:
        raise _refused(exc) from exc
    return Response(
        document,
        media_type=evidence.PACK_FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="crime-match-{match_id}.{fmt}"'},
    )


@router.get("/matches/{match_id}/evidence.{fmt}", response_class=Response)
def evidence_pack(
    match_id: int,
    fmt: str,
    session: DbSession,
    principal: Annotated[Principal, require("crime:evidence")],
    purpose: str | None = None,
) -> Response:
    """The evidence pack of a qualified match: `pdf`, or `docx` to edit the statement."""
    return evidence_response(session, match_id, principal, fmt, purpose)


@router.get("/where", response_model=WhereOut)
def where_was(
    session: DbSession,
    principal: Annotated[Principal, require("crime:review")],
    person: Annotated[str, Query(description="Person reference")],
    crime: Annotated[str, Query(description="Crime reference")],
    force: str | None = None,
    radius_m: Annotated[float, Query(ge=0, le=5000)] = 100.0,
    purpose: str | None = None,
) -> WhereOut:
    try:
        answer = service.where_was_person(
            session,
            person,
            crime,
            principal,
            force_code=force,
            params=MatchParams(radius_m=radius_m),
            purpose=purpose,
        )
    except service.NotFound as exc:
        raise _not_found(exc) from exc
    except service.CrimeError as exc:
        raise _refused(exc) from exc
    return WhereOut(answer=answer.sentence, detail=answer)
