"""All compliance SQL: violations, absences, suspensions, and the few telemetry look-ups the
evaluation windows need (the latest record before a moment)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from tagwatch.compliance.models import AuthorisedAbsence, Violation, ZoneSuspension
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix


def earliest_overlapping_start(
    session: Session, allocation_id: int, at: dt.datetime
) -> dt.datetime | None:
    """The earliest start of a standing violation that began before `at` and runs past it."""
    query = select(func.min(Violation.start)).where(
        Violation.allocation_id == allocation_id,
        Violation.withdrawn_at.is_(None),
        Violation.start < at,
        or_(Violation.end.is_(None), Violation.end >= at),
    )
    return session.execute(query).scalar_one_or_none()


def earliest_record_ms(session: Session, allocation_id: int) -> int | None:
    """The observed time of the allocation's first record of any kind, if it has one."""
    fix = session.execute(
        select(func.min(GpsFix.t_ms)).where(GpsFix.allocation_id == allocation_id)
    ).scalar_one_or_none()
    event = session.execute(
        select(func.min(DeviceEvent.t_ms)).where(DeviceEvent.allocation_id == allocation_id)
    ).scalar_one_or_none()
    return min((v for v in (fix, event) if v is not None), default=None)


def latest_record_ms_before(
    session: Session, allocation_id: int, before_ms: int
) -> tuple[int | None, int | None]:
    """(latest record of any kind, latest accepted fix) observed before `before_ms`."""
    fix = session.execute(
        select(func.max(GpsFix.t_ms)).where(
            GpsFix.allocation_id == allocation_id,
            GpsFix.t_ms < before_ms,
            GpsFix.implausible_reason.is_(None),
        )
    ).scalar_one_or_none()
    any_fix = session.execute(
        select(func.max(GpsFix.t_ms)).where(
            GpsFix.allocation_id == allocation_id, GpsFix.t_ms < before_ms
        )
    ).scalar_one_or_none()
    event = session.execute(
        select(func.max(DeviceEvent.t_ms)).where(
            DeviceEvent.allocation_id == allocation_id, DeviceEvent.t_ms < before_ms
        )
    ).scalar_one_or_none()
    latest = max((v for v in (any_fix, event) if v is not None), default=None)
    return latest, fix


def latest_event_before(
    session: Session, allocation_id: int, kind: str, before: dt.datetime
) -> DeviceEvent | None:
    """The last record of one kind before a moment: the state it set still holds."""
    query = (
        select(DeviceEvent)
        .where(
            DeviceEvent.allocation_id == allocation_id,
            DeviceEvent.type == kind,
            DeviceEvent.t_ms < to_ms(before),
        )
        .order_by(DeviceEvent.t_ms.desc(), DeviceEvent.id.desc())
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def violations_from(session: Session, allocation_id: int, start: dt.datetime) -> list[Violation]:
    """Every violation of the allocation starting at or after `start`, withdrawn included."""
    query = select(Violation).where(
        Violation.allocation_id == allocation_id, Violation.start >= start
    )
    return list(session.execute(query).scalars())


def standing_violations(session: Session, allocation_id: int) -> list[Violation]:
    query = (
        select(Violation)
        .where(Violation.allocation_id == allocation_id, Violation.withdrawn_at.is_(None))
        .order_by(Violation.start, Violation.rule_id, Violation.condition_key)
    )
    return list(session.execute(query).scalars())


def open_violations(session: Session, rule_ids: Sequence[str]) -> list[Violation]:
    query = select(Violation).where(
        Violation.rule_id.in_(list(rule_ids)),
        Violation.end.is_(None),
        Violation.withdrawn_at.is_(None),
    )
    return list(session.execute(query).scalars())


def add(session: Session, row: object) -> None:
    session.add(row)


def flush(session: Session) -> None:
    session.flush()


# --- absences and suspensions -----------------------------------------------------------


def absences_for_order(
    session: Session, order_id: int, start: dt.datetime, end: dt.datetime
) -> list[AuthorisedAbsence]:
    query = select(AuthorisedAbsence).where(
        AuthorisedAbsence.order_id == order_id,
        AuthorisedAbsence.cancelled_at.is_(None),
        AuthorisedAbsence.end > start,
        AuthorisedAbsence.start < end,
    )
    return list(session.execute(query.order_by(AuthorisedAbsence.start)).scalars())


def suspensions_for_order(
    session: Session, order_id: int, start: dt.datetime, end: dt.datetime
) -> list[ZoneSuspension]:
    query = select(ZoneSuspension).where(
        ZoneSuspension.order_id == order_id,
        ZoneSuspension.cancelled_at.is_(None),
        ZoneSuspension.end > start,
        ZoneSuspension.start < end,
    )
    return list(session.execute(query.order_by(ZoneSuspension.start)).scalars())


def list_absences(session: Session, order_id: int | None) -> list[AuthorisedAbsence]:
    query = select(AuthorisedAbsence).order_by(AuthorisedAbsence.start)
    if order_id is not None:
        query = query.where(AuthorisedAbsence.order_id == order_id)
    return list(session.execute(query).scalars())


def list_suspensions(session: Session, order_id: int | None) -> list[ZoneSuspension]:
    query = select(ZoneSuspension).order_by(ZoneSuspension.start)
    if order_id is not None:
        query = query.where(ZoneSuspension.order_id == order_id)
    return list(session.execute(query).scalars())


# --- violation queries for the API and the summary ----------------------------------------


def violation_query(
    *,
    person_id: int | None = None,
    allocation_id: int | None = None,
    order_id: int | None = None,
    rule_ids: Sequence[str] = (),
    status: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    include_withdrawn: bool = False,
) -> Select[Any]:
    query = select(Violation)
    if person_id is not None:
        query = query.where(Violation.person_id == person_id)
    if allocation_id is not None:
        query = query.where(Violation.allocation_id == allocation_id)
    if order_id is not None:
        query = query.where(Violation.order_id == order_id)
    if rule_ids:
        query = query.where(Violation.rule_id.in_(list(rule_ids)))
    if status is not None:
        query = query.where(Violation.status == status)
    if start is not None:
        query = query.where(or_(Violation.end.is_(None), Violation.end > start))
    if end is not None:
        query = query.where(Violation.start < end)
    if not include_withdrawn:
        query = query.where(Violation.withdrawn_at.is_(None))
    return query.order_by(Violation.start.desc(), Violation.id.desc())


def count(session: Session, query: Select[Any]) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(session.execute(counted).scalar_one())


def find_violations(
    session: Session, query: Select[Any], limit: int, offset: int
) -> list[Violation]:
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def get_violation(session: Session, violation_id: int) -> Violation | None:
    return session.get(Violation, violation_id)
