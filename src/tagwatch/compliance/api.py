"""JSON API: violations, compliance summaries, authorised absences and zone suspensions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.compliance import repository, service
from tagwatch.compliance.models import AuthorisedAbsence, ZoneSuspension
from tagwatch.compliance.rules import RULES
from tagwatch.compliance.schemas import (
    AbsenceIn,
    AbsenceOut,
    ComplianceSummary,
    SuspensionIn,
    SuspensionOut,
    ViolationOut,
    ViolationPage,
)
from tagwatch.compliance.summary import compliance_summary
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession

router = APIRouter(tags=["compliance"])


@contextmanager
def _answers() -> Iterator[None]:
    """A refused excusal as a 422 naming the field and the reason."""
    try:
        yield
    except service.ComplianceInputError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body", error.field_name], "msg": error.reason, "type": "value_error"}],
        ) from error


def _cancel(
    session: Session,
    excusal: AuthorisedAbsence | ZoneSuspension | None,
    what: str,
    key: int,
    principal: Principal,
) -> None:
    if excusal is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No {what} {key}")
    with _answers():
        service.cancel_excusal(session, excusal, principal.username, utcnow())


@router.get("/violations", response_model=ViolationPage)
def list_violations(
    session: DbSession,
    principal: Annotated[Principal, require("compliance:read")],
    person_id: int | None = None,
    allocation_id: int | None = None,
    order_id: int | None = None,
    rule: Annotated[list[str] | None, Query(description="rule ids")] = None,
    violation_status: Annotated[
        str | None, Query(alias="status", pattern="^(possible|confirmed)$")
    ] = None,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    include_withdrawn: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ViolationPage:
    """Violations, newest first, filtered by person, allocation, order, rule, status, time."""
    unknown = sorted(set(rule or ()) - set(RULES))
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"rule: unknown rule ids {', '.join(unknown)}"
        )
    query = repository.violation_query(
        person_id=person_id,
        allocation_id=allocation_id,
        order_id=order_id,
        rule_ids=rule or (),
        status=violation_status,
        start=start,
        end=end,
        include_withdrawn=include_withdrawn,
    )
    total = repository.count(session, query)
    items = repository.find_violations(session, query, limit, offset)
    record(
        session,
        principal,
        "compliance.violations.list",
        subject_type="person" if person_id is not None else "violation",
        subject_id=person_id,
        detail={
            "allocation_id": allocation_id,
            "order_id": order_id,
            "rules": rule or [],
            "status": violation_status,
            "returned": len(items),
        },
    )
    return ViolationPage(total=total, items=[ViolationOut.model_validate(v) for v in items])


@router.get("/violations/{violation_id}", response_model=ViolationOut)
def get_violation(
    violation_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:read")],
) -> ViolationOut:
    violation = repository.get_violation(session, violation_id)
    if violation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No violation {violation_id}")
    record(
        session,
        principal,
        "compliance.violation.read",
        subject_type="violation",
        subject_id=violation_id,
        detail={"person_id": violation.person_id},
    )
    return ViolationOut.model_validate(violation)


@router.get("/people/{person_id}/compliance-summary", response_model=ComplianceSummary)
def person_summary(
    person_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:read")],
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime, Query(alias="to")],
) -> ComplianceSummary:
    """Curfew hours kept against scheduled, and violations by type over time."""
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to: must be after from")
    summary = compliance_summary(session, person_id, start, end)
    record(
        session,
        principal,
        "compliance.summary.read",
        subject_type="person",
        subject_id=person_id,
        detail={"from": start.isoformat(), "to": end.isoformat()},
    )
    return summary


# --- authorised absences -------------------------------------------------------------------


@router.get("/absences", response_model=list[AbsenceOut])
def list_absences(
    session: DbSession,
    _principal: Annotated[Principal, require("compliance:read")],
    order_id: int | None = None,
) -> list[AbsenceOut]:
    return [AbsenceOut.model_validate(a) for a in repository.list_absences(session, order_id)]


@router.post("/absences", response_model=AbsenceOut, status_code=status.HTTP_201_CREATED)
def create_absence(
    data: AbsenceIn,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:write")],
) -> AbsenceOut:
    """Authorise an absence from the curfew address; violations over it are re-derived."""
    with _answers():
        absence = service.record_absence(session, data, principal.username, utcnow())
    return AbsenceOut.model_validate(absence)


@router.post("/absences/{absence_id}/cancel", response_model=AbsenceOut)
def cancel_absence(
    absence_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:write")],
) -> AbsenceOut:
    absence = session.get(AuthorisedAbsence, absence_id)
    _cancel(session, absence, "absence", absence_id, principal)
    return AbsenceOut.model_validate(absence)


# --- zone suspensions -----------------------------------------------------------------------


@router.get("/zone-suspensions", response_model=list[SuspensionOut])
def list_suspensions(
    session: DbSession,
    _principal: Annotated[Principal, require("compliance:read")],
    order_id: int | None = None,
) -> list[SuspensionOut]:
    rows = repository.list_suspensions(session, order_id)
    return [SuspensionOut.model_validate(s) for s in rows]


@router.post("/zone-suspensions", response_model=SuspensionOut, status_code=status.HTTP_201_CREATED)
def create_suspension(
    data: SuspensionIn,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:write")],
) -> SuspensionOut:
    """Suspend a zone for a period; violations over it are re-derived."""
    with _answers():
        suspension = service.record_suspension(session, data, principal.username, utcnow())
    return SuspensionOut.model_validate(suspension)


@router.post("/zone-suspensions/{suspension_id}/cancel", response_model=SuspensionOut)
def cancel_suspension(
    suspension_id: int,
    session: DbSession,
    principal: Annotated[Principal, require("compliance:write")],
) -> SuspensionOut:
    suspension = session.get(ZoneSuspension, suspension_id)
    _cancel(session, suspension, "zone suspension", suspension_id, principal)
    return SuspensionOut.model_validate(suspension)
