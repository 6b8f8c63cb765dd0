"""All the SQL behind statistics and data quality: facts are read once, in bulk."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, cast, func, literal, select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert, AlertStatus
from tagwatch.cases.models import Allocation, Device, Order, Person, ReferenceValue
from tagwatch.compliance.models import Violation
from tagwatch.crime.models import CrimeBatch, CrimeMatch, CrimeMatchRun


def people(session: Session) -> dict[int, Any]:
    rows = session.execute(
        select(
            Person.id,
            Person.ref,
            Person.date_of_birth,
            Person.sex,
            Person.ethnicity,
            Person.disability,
            Person.nationality,
        )
    )
    return {row.id: row for row in rows}


def orders(session: Session) -> dict[int, Any]:
    rows = session.execute(
        select(
            Order.id,
            Order.person_id,
            Order.type,
            Order.status,
            Order.end_reason,
            Order.region_code,
            Order.delivery_unit_code,
            Order.start_date,
            Order.end_date,
        )
    )
    return {row.id: row for row in rows}


def allocations(session: Session, before: dt.datetime) -> list[Any]:
    """Every allocation fitted before `before`, with its device type."""
    statement = (
        select(
            Allocation.order_id,
            Allocation.person_id,
            Allocation.fitted_at,
            Allocation.removed_at,
            Device.type.label("device_type"),
        )
        .join(Device, Device.id == Allocation.device_id)
        .where(Allocation.fitted_at < before)
    )
    return list(session.execute(statement))


def violation_counts(
    session: Session, start: dt.datetime, end: dt.datetime
) -> list[tuple[int | None, str, int]]:
    """(order, rule, count) of violations that began in [start, end) and still stand."""
    statement = (
        select(Violation.order_id, Violation.rule_id, func.count())
        .where(Violation.start >= start, Violation.start < end, Violation.withdrawn_at.is_(None))
        .group_by(Violation.order_id, Violation.rule_id)
    )
    return [(o, r, n) for o, r, n in session.execute(statement)]


def _seconds_between(session: Session, begin: Any, end: Any) -> ColumnElement[float]:
    # Done in SQL so that millions of timestamps never become Python datetimes.
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(begin)) * literal(86400.0)
    return cast(func.extract("epoch", end - begin), Float)


def alerts_raised(session: Session, start: dt.datetime, end: dt.datetime) -> list[tuple[Any, ...]]:
    """One row an alert raised in [start, end), read in one pass: (order id, is it about a
    violation, seconds from the event to raised, to acknowledged, to outcome)."""
    statement = select(
        Alert.order_id,
        Alert.kind == "violation",
        _seconds_between(session, Alert.event_at, Alert.raised_at),
        _seconds_between(session, Alert.event_at, Alert.acknowledged_at),
        _seconds_between(session, Alert.event_at, Alert.outcome_at),
    ).where(Alert.raised_at >= start, Alert.raised_at < end)
    return [tuple(row) for row in session.execute(statement)]


def alerts_overdue(session: Session, as_at: dt.datetime) -> int:
    statement = select(func.count()).where(
        Alert.outcome_at.is_(None),
        Alert.outcome_due_at < as_at,
        Alert.raised_at < as_at,
        Alert.status != AlertStatus.WITHDRAWN.value,
    )
    return int(session.scalar(statement) or 0)


def orders_awaiting_fitting_overdue(session: Session, as_at: dt.datetime) -> int:
    statement = select(func.count()).where(
        Order.status == "awaiting_fitting", Order.fitting_deadline < as_at
    )
    return int(session.scalar(statement) or 0)


def crime_throughput(session: Session, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    batches = session.execute(
        select(func.count(), func.coalesce(func.sum(CrimeBatch.accepted_rows), 0)).where(
            CrimeBatch.received_at >= start, CrimeBatch.received_at < end
        )
    ).one()
    in_period = and_(CrimeMatchRun.started_at >= start, CrimeMatchRun.started_at < end)
    matches = session.scalar(
        select(func.count()).select_from(CrimeMatch).join(CrimeMatchRun).where(in_period)
    )
    reviewed = session.scalar(
        select(func.count())
        .select_from(CrimeMatch)
        .where(
            CrimeMatch.reviewed_at >= start,
            CrimeMatch.reviewed_at < end,
            CrimeMatch.review_state != "unreviewed",
        )
    )
    return {
        "batches": int(batches[0]),
        "crimes": int(batches[1]),
        "matches": int(matches or 0),
        "reviewed": int(reviewed or 0),
    }


def labels(session: Session, kind: str) -> dict[str, str]:
    rows = session.execute(
        select(ReferenceValue.code, ReferenceValue.label).where(ReferenceValue.kind == kind)
    )
    return {code: label for code, label in rows}


def request_seconds(
    session: Session, start: dt.datetime, end: dt.datetime, stop: str
) -> list[float]:
    """Seconds from a data request to `stop` for requests made in [start, end)."""
    from tagwatch.requests.models import DataRequest

    column = getattr(DataRequest, stop)
    statement = select(_seconds_between(session, DataRequest.requested_at, column)).where(
        DataRequest.requested_at >= start, DataRequest.requested_at < end, column.is_not(None)
    )
    return [float(v) for (v,) in session.execute(statement)]
