"""Telemetry JSON routes: the device gateways' batch endpoint, quarantine and unallocated data.

The ingest answer is sent only after the request's transaction has committed (the request
session commits before the response), so an acknowledged record is a durable record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from tagwatch.access.audit import record as audit
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.db.deps import DbSession, DurableSession
from tagwatch.telemetry import repository, schemas
from tagwatch.telemetry.service import ingest, replay_quarantined
from tagwatch.telemetry.sources import items_from_body

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

MAX_BODY_BYTES = 64 * 1024 * 1024

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Feed format v1 records: a JSON array, or NDJSON (one record a line).",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"Send at most {MAX_BODY_BYTES} bytes a request"
        )
    return await request.body()


@router.post(
    "",
    response_model=schemas.IngestAnswer,
    openapi_extra=_BODY_DOC,
    summary="Send device records",
)
def post_records(
    request: Request,
    session: DurableSession,
    body: bytes = Depends(_raw_body),
    principal: Principal = require("telemetry:ingest"),
) -> dict[str, Any]:
    result = ingest(
        session,
        items_from_body(body),
        channel="http",
        origin=principal.username,
        settings=request.app.state.settings,
        received_at=dt.datetime.now(dt.UTC),
    )
    return result.as_dict()


@router.get("/quarantine", response_model=list[schemas.QuarantinedOut])
def list_quarantine(
    session: DbSession,
    status_filter: str = Query(
        "quarantined", alias="status", pattern="^(quarantined|released|all)$"
    ),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1),
    principal: Principal = require("telemetry:quarantine"),
) -> list[Any]:
    rows = repository.list_quarantined(
        session,
        status=None if status_filter == "all" else status_filter,
        limit=limit,
        before_id=before_id,
    )
    # Raw records can hold positions of people: reading them is audited.
    audit(
        session,
        principal,
        "telemetry.quarantine.list",
        subject_type="quarantined_record",
        detail={"status": status_filter, "ids": [row.id for row in rows]},
    )
    return rows


class ReplayBody(BaseModel):
    corrected_text: str | None = Field(
        None, description="The corrected raw record; leave out to replay it as it is"
    )


class ReplayManyBody(BaseModel):
    ids: list[int] | None = Field(None, description="Which records; leave out for all")


@router.post("/quarantine/{quarantine_id}/replay", response_model=schemas.ReplayAnswer)
def replay_one(
    quarantine_id: int,
    request: Request,
    session: DbSession,
    body: ReplayBody | None = None,
    principal: Principal = require("telemetry:quarantine"),
) -> dict[str, Any]:
    row = repository.get_quarantined(session, quarantine_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No quarantined record with that id")
    if row.status != "quarantined":
        raise HTTPException(status.HTTP_409_CONFLICT, "That record was released already")
    corrections = (
        {} if body is None or body.corrected_text is None else {quarantine_id: body.corrected_text}
    )
    return _replay(request, session, principal, [quarantine_id], corrections)


@router.post("/quarantine/replay", response_model=schemas.ReplayAnswer)
def replay_many(
    request: Request,
    session: DbSession,
    body: ReplayManyBody | None = None,
    principal: Principal = require("telemetry:quarantine"),
) -> dict[str, Any]:
    return _replay(request, session, principal, None if body is None else body.ids, {})


def _replay(
    request: Request,
    session: DbSession,
    principal: Principal,
    ids: list[int] | None,
    corrections: dict[int, str],
) -> dict[str, Any]:
    result = replay_quarantined(
        session,
        ids=ids,
        settings=request.app.state.settings,
        received_at=dt.datetime.now(dt.UTC),
        corrections=corrections,
    )
    audit(
        session,
        principal,
        "telemetry.quarantine.replay",
        subject_type="quarantined_record",
        detail={"ids": ids, "released": result.released, "corrected": sorted(corrections)},
    )
    return result.as_dict()


@router.get("/unallocated", response_model=list[schemas.UnallocatedOut])
def unallocated(session: DbSession, principal: Principal = require("device:read")) -> list[Any]:
    return repository.unallocated_summary(session)
