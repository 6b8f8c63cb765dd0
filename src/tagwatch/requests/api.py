"""JSON API for location data requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.db.deps import DbSession
from tagwatch.requests import service
from tagwatch.requests.models import DataRequest
from tagwatch.requests.schemas import DataRequestIn, DataRequestOut, DecisionIn, TurnaroundOut

router = APIRouter(prefix="/data-requests", tags=["data requests"])


def _out(request: DataRequest, principal: Principal) -> DataRequestOut:
    out = DataRequestOut.model_validate(request)
    # The files themselves (and their list) are the requester's alone.
    if request.requester_username != principal.username:
        out.files = []
    return out


def _get(session: DbSession, principal: Principal, request_id: int) -> DataRequest:
    try:
        return service.get_request(session, principal, request_id)
    except service.RequestNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from missing


@router.get("", response_model=list[DataRequestOut])
def list_requests(
    session: DbSession,
    principal: Annotated[Principal, require("request:read")],
    request_status: Annotated[str | None, Query(alias="status")] = None,
    mine: bool = False,
) -> list[DataRequestOut]:
    """The caller's requests, and for approvers those they may decide; newest first."""
    found = service.list_requests(session, principal, mine=mine, status=request_status)
    return [_out(r, principal) for r in found]


@router.post(
    "",
    response_model=DataRequestOut,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "The fields in error, each with its reason"}},
)
def create_request(
    body: DataRequestIn,
    session: DbSession,
    principal: Annotated[Principal, require("request:create")],
) -> DataRequestOut | JSONResponse:
    try:
        request = service.create_request(
            session, principal, service.NewRequest(**body.model_dump())
        )
    except service.RequestError as error:
        # Answered, not raised: the transaction still commits the audited person look-up.
        return JSONResponse({"detail": error.errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return _out(request, principal)


@router.get("/turnaround", response_model=TurnaroundOut)
def turnaround(
    session: DbSession,
    _principal: Annotated[Principal, require("report:read")],
    start: AwareDatetime,
    end: AwareDatetime,
) -> TurnaroundOut:
    """Median and 95th percentile times, in seconds, for requests made in [start, end)."""
    return TurnaroundOut.model_validate(service.turnaround(session, start, end))


@router.get("/{request_id}", response_model=DataRequestOut)
def read_request(
    request_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("request:read")],
) -> DataRequestOut:
    return _out(_get(session, principal, request_id), principal)


def _decide(
    session: DbSession, principal: Principal, request_id: int, reason: str, approve: bool
) -> DataRequestOut:
    decide = service.approve if approve else service.refuse
    try:
        request = decide(session, principal, request_id, reason)
    except service.RequestNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from missing
    except service.RequestError as error:
        code = (
            status.HTTP_409_CONFLICT
            if "decision" in error.errors
            else status.HTTP_422_UNPROCESSABLE_CONTENT
        )
        raise HTTPException(code, error.errors) from error
    return _out(request, principal)


@router.post("/{request_id}/approve", response_model=DataRequestOut)
def approve(
    request_id: int,
    body: DecisionIn,
    session: DbSession,
    principal: Annotated[Principal, require("request:approve")],
) -> DataRequestOut:
    """Approve a pending request; its files are made before this answers."""
    return _decide(session, principal, request_id, body.reason, approve=True)


@router.post("/{request_id}/refuse", response_model=DataRequestOut)
def refuse(
    request_id: int,
    body: DecisionIn,
    session: DbSession,
    principal: Annotated[Principal, require("request:approve")],
) -> DataRequestOut:
    return _decide(session, principal, request_id, body.reason, approve=False)


@router.get("/{request_id}/files/{fmt}")
def download(
    request_id: int,
    fmt: str,
    session: DbSession,
    principal: Annotated[Principal, require("request:read")],
) -> Response:
    """One file of an approved request (csv, geojson, kml, pdf), for its requester only."""
    return file_response(session, principal, request_id, fmt)


def file_response(session: DbSession, principal: Principal, request_id: int, fmt: str) -> Response:
    """The download both the API and the pages serve."""
    try:
        file = service.download(session, principal, request_id, fmt)
    except service.RequestNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(missing)) from missing
    except service.RequestError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, error.errors) from error
    except service.FileGone as gone:
        raise HTTPException(status.HTTP_410_GONE, str(gone)) from gone
    return Response(
        file.content,
        media_type=file.media_type,
        headers={
            "content-disposition": f'attachment; filename="{file.filename}"',
            "x-content-sha256": file.sha256,
            "cache-control": "no-store",
        },
    )
