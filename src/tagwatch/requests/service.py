"""Location data requests: ask, decide, fulfil at once, download while it lasts, expire.

Approval and fulfilment happen in the same transaction: the files are written (to the
database) before the approval commits, so an approved request always has its files and a
failure to produce them leaves the request pending. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow
from tagwatch.requests import repository as repo
from tagwatch.requests.exports import FORMATS, SummaryHeading, export_files
from tagwatch.requests.models import DataRequest, DataRequestFile, RequestStatus
from tagwatch.settings import settings_of
from tagwatch.web.portal.people import PersonCard
from tagwatch.web.portal.period import Period
from tagwatch.web.portal.trail_pages import load_trail

SUBJECT = "data_request"
LAWFUL_BASES: dict[str, str] = {
    "crime": "Prevention or detection of crime (DPA 2018 s.31 / Sch.2 para 2)",
    "safeguarding": "Safeguarding a child or adult at risk (DPA 2018 Sch.1 paras 18 and 19)",
    "court_order": "Court order or other legal proceedings (DPA 2018 Sch.2 para 5)",
    "supervision": "Supervision of the order (the monitoring service's own function)",
}
# Room for clocks a little ahead of the server's when a period ends "now".
FUTURE_SKEW = dt.timedelta(minutes=5)
MAX_TEXT = 2000


class RequestError(ValueError):
    """Bad input or a step that is not allowed, by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class RequestNotFound(LookupError):
    """No such request, or not one the caller may see (the two are not told apart)."""


class FileGone(LookupError):
    """The files were never made, or have expired."""


@dataclass(frozen=True)
class NewRequest:
    identifier: str
    start: dt.datetime | None
    end: dt.datetime | None
    purpose: str
    lawful_basis: str
    crime_reference: str | None = None


def _limits(session: Session) -> tuple[dt.timedelta, dt.timedelta]:
    settings = settings_of(session)
    return (
        dt.timedelta(days=settings.data_request_max_days),
        dt.timedelta(days=settings.data_request_access_days),
    )


def create_request(
    session: Session, principal: Principal, new: NewRequest, *, now: dt.datetime | None = None
) -> DataRequest:
    now = now or utcnow()
    longest, _ = _limits(session)
    errors: dict[str, str] = {}
    purpose = new.purpose.strip()
    crime_reference = (new.crime_reference or "").strip() or None
    if not new.identifier.strip():
        errors["identifier"] = "Enter the person's tagwatch reference, CRN or PNC"
    if new.start is None:
        errors["start"] = "Enter the start of the period"
    if new.end is None:
        errors["end"] = "Enter the end of the period"
    if new.start is not None and new.end is not None:
        if new.end <= new.start:
            errors["end"] = "The end must be after the start"
        elif new.end - new.start > longest:
            errors["end"] = f"The period must be at most {_days(longest)}"
        elif new.end > now + FUTURE_SKEW:
            errors["end"] = "The end must not be in the future"
    if not purpose:
        errors["purpose"] = "Enter the purpose of the request"
    elif len(purpose) > MAX_TEXT:
        errors["purpose"] = f"The purpose must be at most {MAX_TEXT} characters"
    if new.lawful_basis not in LAWFUL_BASES:
        errors["lawful_basis"] = "Choose the lawful basis"
    elif new.lawful_basis == "crime" and principal.force_code and not crime_reference:
        errors["crime_reference"] = "Enter the crime reference"
    if crime_reference and len(crime_reference) > 60:
        errors["crime_reference"] = "The crime reference must be at most 60 characters"
    person = None
    if "identifier" not in errors:
        person = repo.person_by_identifier(session, principal, new.identifier)
        # The look-up is a search by identifier: audited whether or not it finds anyone.
        record(
            session,
            principal,
            "request.person_lookup",
            subject_type="person",
            subject_id=person.id if person else None,
            purpose=purpose or None,
            detail={"identifier": new.identifier.strip(), "found": person is not None},
        )
        if person is None:
            errors["identifier"] = "No person you may ask about has that reference, CRN or PNC"
    if errors:
        raise RequestError(errors)
    assert person is not None and new.start is not None and new.end is not None
    request = DataRequest(
        requester_username=principal.username,
        requester_name=principal.display_name,
        requester_force_code=principal.force_code,
        person_id=person.id,
        person_ref=person.ref,
        period_start=new.start,
        period_end=new.end,
        purpose=purpose,
        lawful_basis=new.lawful_basis,
        crime_reference=crime_reference,
        status=RequestStatus.PENDING,
        requested_at=now,
    )
    session.add(request)
    session.flush()
    record(
        session,
        principal,
        "request.created",
        subject_type=SUBJECT,
        subject_id=request.id,
        purpose=purpose,
        detail={
            "person_id": person.id,
            "from": new.start,
            "to": new.end,
            "lawful_basis": new.lawful_basis,
            "crime_reference": crime_reference,
        },
    )
    return request


def _days(delta: dt.timedelta) -> str:
    days = delta / dt.timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")


def get_request(session: Session, principal: Principal, request_id: int) -> DataRequest:
    found = repo.get_visible(session, principal, request_id)
    if found is None:
        raise RequestNotFound(f"data request {request_id}")
    return found


def list_requests(
    session: Session, principal: Principal, *, mine: bool = False, status: str | None = None
) -> Sequence[DataRequest]:
    return repo.list_requests(session, principal, mine=mine, status=status)


def _pending_for_decision(
    session: Session, principal: Principal, request_id: int, reason: str
) -> DataRequest:
    request = repo.for_update(session, principal, request_id)
    if request is None:
        raise RequestNotFound(f"data request {request_id}")
    if not principal.has("request:approve"):
        raise RequestError({"decision": "You may not decide data requests"})
    if request.requester_username == principal.username:
        raise RequestError({"decision": "Someone other than the requester must decide it"})
    if request.status != RequestStatus.PENDING:
        raise RequestError({"decision": f"The request is already {request.status}"})
    if not reason.strip():
        raise RequestError({"reason": "Enter the reason for the decision"})
    return request


def refuse(
    session: Session,
    principal: Principal,
    request_id: int,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> DataRequest:
    now = now or utcnow()
    request = _pending_for_decision(session, principal, request_id, reason)
    request.status = RequestStatus.REFUSED
    request.decided_at = now
    request.decided_by = principal.username
    request.decision_reason = reason.strip()
    record(
        session,
        principal,
        "request.refused",
        subject_type=SUBJECT,
        subject_id=request.id,
        detail={"reason": request.decision_reason},
    )
    session.flush()
    return request


def approve(
    session: Session,
    principal: Principal,
    request_id: int,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> DataRequest:
    """Approve and fulfil in one go: the files exist when this returns."""
    now = now or utcnow()
    _, access = _limits(session)
    request = _pending_for_decision(session, principal, request_id, reason)
    request.status = RequestStatus.APPROVED
    request.decided_at = now
    request.decided_by = principal.username
    request.decision_reason = reason.strip()
    request.expires_at = now + access
    record(
        session,
        principal,
        "request.approved",
        subject_type=SUBJECT,
        subject_id=request.id,
        detail={"reason": request.decision_reason, "expires_at": request.expires_at},
    )
    fulfil(session, request, approver=principal)
    return request


def fulfil(session: Session, request: DataRequest, *, approver: Principal) -> None:
    """Make and store every file of an approved request, with its SHA-256."""
    started = time.perf_counter()
    person = PersonCard(
        person_id=request.person_id,
        ref=request.person_ref,
        label=request.person_ref,
        allocation_ids=repo.allocation_ids(session, request.person_id),
    )
    trail = load_trail(session, person, Period(request.period_start, request.period_end))
    heading = SummaryHeading(
        request_id=request.id,
        purpose=request.purpose,
        lawful_basis=LAWFUL_BASES[request.lawful_basis],
        crime_reference=request.crime_reference,
        requested_by=f"{request.requester_name} ({request.requester_username})",
        approved_by=approver.display_name,
        approved_at=request.decided_at or utcnow(),
    )
    made = request.decided_at or utcnow()
    for file in export_files(trail, heading):
        request.files.append(
            DataRequestFile(
                format=file.format,
                filename=file.filename,
                media_type=file.media_type,
                size_bytes=len(file.content),
                sha256=file.sha256,
                content=file.content,
                created_at=made,
            )
        )
    request.fix_count = len(trail)
    session.flush()
    # The decision's time plus the real time the work took (the decision's clock may be a
    # test's or a replay's, and turnaround should measure the work, not the clock).
    request.fulfilled_at = made + dt.timedelta(seconds=time.perf_counter() - started)
    record(
        session,
        None,
        "request.fulfilled",
        subject_type=SUBJECT,
        subject_id=request.id,
        detail={
            "person_id": request.person_id,
            "from": request.period_start,
            "to": request.period_end,
            "fixes": len(trail),
            "first": _first_last(trail.t_ms)[0],
            "last": _first_last(trail.t_ms)[1],
        },
    )


def _first_last(t_ms: NDArray[np.int64]) -> tuple[str | None, str | None]:
    if t_ms.shape[0] == 0:
        return None, None
    first = dt.datetime.fromtimestamp(int(t_ms[0]) / 1000, dt.UTC)
    last = dt.datetime.fromtimestamp(int(t_ms[-1]) / 1000, dt.UTC)
    return first.isoformat(), last.isoformat()


def download(
    session: Session,
    principal: Principal,
    request_id: int,
    fmt: str,
    *,
    now: dt.datetime | None = None,
) -> DataRequestFile:
    """One file of an approved request, for its requester only, until it expires."""
    now = now or utcnow()
    if fmt not in FORMATS:
        raise RequestError({"format": f"must be one of {', '.join(FORMATS)}"})
    request = get_request(session, principal, request_id)
    if request.requester_username != principal.username:
        raise RequestNotFound(f"data request {request_id}")
    if request.status != RequestStatus.APPROVED or (
        request.expires_at is not None and request.expires_at <= now
    ):
        raise FileGone(f"data request {request_id} has no files to download")
    file = repo.file_with_content(session, request_id, fmt)
    if file is None or file.content is None:
        raise FileGone(f"data request {request_id} has no {fmt} file")
    if request.first_downloaded_at is None:
        request.first_downloaded_at = now
    record(
        session,
        principal,
        "request.downloaded",
        subject_type=SUBJECT,
        subject_id=request.id,
        purpose=request.purpose,
        detail={
            "format": fmt,
            "sha256": file.sha256,
            "person_id": request.person_id,
            "from": request.period_start,
            "to": request.period_end,
        },
    )
    return file


def expire_due(session: Session, now: dt.datetime) -> int:
    """Clear the files of every approved request past its expiry; access ends with them."""
    expired = 0
    for request in repo.due_to_expire(session, now):
        cleared = repo.clear_files(session, request.id, now)
        request.status = RequestStatus.EXPIRED
        request.expired_at = now
        record(
            session,
            None,
            "request.expired",
            subject_type=SUBJECT,
            subject_id=request.id,
            detail={"files_deleted": cleared, "expires_at": request.expires_at},
        )
        expired += 1
    session.flush()
    return expired


# --- turnaround ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    count: int
    median_s: float | None
    p95_s: float | None


@dataclass(frozen=True)
class Turnaround:
    """How long requests took, for those asked for in [start, end): seconds."""

    requests: int
    decided: int
    approved: int
    request_to_decision: Spread
    approval_to_files: Spread
    request_to_files: Spread
    request_to_first_download: Spread


def _spread(seconds: list[float]) -> Spread:
    if not seconds:
        return Spread(0, None, None)
    values = np.asarray(seconds, dtype=np.float64)
    return Spread(
        len(seconds), float(np.median(values)), float(np.percentile(values, 95, method="linear"))
    )


def turnaround(session: Session, start: dt.datetime, end: dt.datetime) -> Turnaround:
    found = repo.decided_between(session, start, end)

    def between(a: str, b: str) -> list[float]:
        out = []
        for r in found:
            t0, t1 = getattr(r, a), getattr(r, b)
            if t0 is not None and t1 is not None:
                out.append((t1 - t0).total_seconds())
        return out

    return Turnaround(
        requests=len(found),
        decided=sum(1 for r in found if r.decided_at is not None),
        approved=sum(1 for r in found if r.fulfilled_at is not None),
        request_to_decision=_spread(between("requested_at", "decided_at")),
        approval_to_files=_spread(between("decided_at", "fulfilled_at")),
        request_to_files=_spread(between("requested_at", "fulfilled_at")),
        request_to_first_download=_spread(between("requested_at", "first_downloaded_at")),
    )
