"""All SQL of location data requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, undefer

from tagwatch.access.principal import Principal
from tagwatch.cases.models import Allocation, Person
from tagwatch.cases.scoping import scope_people
from tagwatch.requests.models import DataRequest, DataRequestFile, RequestStatus


def person_by_identifier(session: Session, principal: Principal, identifier: str) -> Person | None:
    """The one person whose tagwatch reference, CRN or PNC is exactly `identifier`.

    Police see no people through the case record's scope; for them this exact look-up is the
    only way in (never a search), and it still keeps restricted cases out without
    `restricted:read`. Everyone else looks up within their own scope."""
    wanted = identifier.strip().upper()
    query = select(Person).where(
        or_(
            func.upper(Person.ref) == wanted,
            func.upper(Person.crn) == wanted,
            func.upper(Person.pnc) == wanted,
        )
    )
    if principal.force_code is not None:
        if not principal.has("restricted:read"):
            query = query.where(Person.restricted.is_(False))
    else:
        query = scope_people(query, principal)
    found = session.scalars(query.limit(2)).all()
    return found[0] if len(found) == 1 else None


def allocation_ids(session: Session, person_id: int) -> list[int]:
    return list(session.scalars(select(Allocation.id).where(Allocation.person_id == person_id)))


def visible_requests(principal: Principal) -> Select[DataRequest]:
    """Requests the caller may see: their own, and (approvers) those they may decide."""
    query = select(DataRequest)
    mine = DataRequest.requester_username == principal.username
    if not principal.has("request:approve"):
        return query.where(mine)
    if principal.force_code is not None:
        return query.where(or_(mine, DataRequest.requester_force_code == principal.force_code))
    return query


def get_visible(session: Session, principal: Principal, request_id: int) -> DataRequest | None:
    return session.scalar(visible_requests(principal).where(DataRequest.id == request_id))


def for_update(session: Session, principal: Principal, request_id: int) -> DataRequest | None:
    """The request, locked so two approvers cannot decide it at once."""
    return session.scalar(
        visible_requests(principal).where(DataRequest.id == request_id).with_for_update()
    )


def list_requests(
    session: Session,
    principal: Principal,
    *,
    mine: bool = False,
    status: str | None = None,
    limit: int = 200,
) -> Sequence[DataRequest]:
    query = visible_requests(principal)
    if mine:
        query = query.where(DataRequest.requester_username == principal.username)
    if status is not None:
        query = query.where(DataRequest.status == status)
    return session.scalars(query.order_by(DataRequest.requested_at.desc()).limit(limit)).all()


def file_with_content(session: Session, request_id: int, fmt: str) -> DataRequestFile | None:
    return session.scalar(
        select(DataRequestFile)
        .where(DataRequestFile.request_id == request_id, DataRequestFile.format == fmt)
        .options(undefer(DataRequestFile.content))
    )


def due_to_expire(session: Session, now: dt.datetime) -> Sequence[DataRequest]:
    return session.scalars(
        select(DataRequest)
        .where(DataRequest.status == RequestStatus.APPROVED, DataRequest.expires_at <= now)
        .order_by(DataRequest.id)
        .with_for_update()
    ).all()


def clear_files(session: Session, request_id: int, now: dt.datetime) -> int:
    result = session.execute(
        update(DataRequestFile)
        .where(DataRequestFile.request_id == request_id, DataRequestFile.deleted_at.is_(None))
        .values(content=None, deleted_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def decided_between(
    session: Session, start: dt.datetime, end: dt.datetime
) -> Sequence[DataRequest]:
    return session.scalars(
        select(DataRequest).where(DataRequest.requested_at >= start, DataRequest.requested_at < end)
    ).all()
