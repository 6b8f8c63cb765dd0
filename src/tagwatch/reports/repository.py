"""All the SQL behind statistics and data quality: facts are read once, in bulk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from tagwatch.alerts.models import DELAY_STEPS, Alert, AlertKind, AlertStatus
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


# Rows are aggregated into text a window of this length at a time (see `integer_arrays`).
WINDOW = dt.timedelta(days=366)


Integers = ColumnElement[Any] | InstrumentedAttribute[Any]


def _as_text_list(session: Session, value: Integers) -> ColumnElement[str]:
    # The separator is written into the SQL: SQLite reads a bound one again for every row.
    if session.get_bind().dialect.name == "sqlite":
        return func.group_concat(value)  # separated by commas
    return func.string_agg(cast(value, Text), literal_column("','"))


def integer_arrays(
    session: Session,
    moment: InstrumentedAttribute[dt.datetime],
    start: dt.datetime,
    end: dt.datetime,
    values: Sequence[Integers],
    *where: ColumnElement[bool],
) -> list[npt.NDArray[np.int64]]:
    """Each of `values` over the rows whose `moment` is in [start, end), as an int64 array
    (NULLs left out; no order between arrays). Millions of rows a period: the database joins
    them into text that NumPy parses, because a Python object per value costs more than the
    query; one window (`WINDOW`) at a time bounds the text."""
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in values]
    begin = start
    while begin < end:
        stop = min(begin + WINDOW, end)
        statement = select(*(_as_text_list(session, v) for v in values)).where(
            moment >= begin, moment < stop, *where
        )
        for part, text in zip(parts, session.execute(statement).one(), strict=True):
            if text:
                part.append(np.fromstring(text, dtype=np.int64, sep=","))
        begin = stop
    return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in parts]


def violation_counts(
    session: Session, start: dt.datetime, end: dt.datetime, prefixes: Sequence[str]
) -> list[tuple[int, int, int]]:
    """(order, group, count) of violations that began in [start, end) and still stand, where
    the group is the position in `prefixes` of the rule id's part before its first dot, or
    len(prefixes) when none matches. The group is worked out in SQL and each violation read
    as one integer (order x groups + group): grouping in SQL would sort millions of rows."""
    rule = Violation.rule_id
    if session.get_bind().dialect.name == "sqlite":
        prefix = func.substr(rule, 1, func.instr(rule.concat("."), ".") - 1)
    else:
        prefix = func.split_part(rule, ".", 1)
    group = case({p: index for index, p in enumerate(prefixes)}, value=prefix, else_=len(prefixes))
    width = len(prefixes) + 1
    (codes,) = integer_arrays(
        session,
        Violation.start,
        start,
        end,
        [Violation.order_id * width + group],
        Violation.withdrawn_at.is_(None),
    )
    found, counts = np.unique(codes, return_counts=True)
    return [
        (int(code) // width, int(code) % width, int(count))
        for code, count in zip(found, counts, strict=True)
    ]


def _seconds_between(session: Session, begin: Any, end: Any) -> ColumnElement[float]:
    # Done in SQL so that millions of timestamps never become Python datetimes.
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(begin)) * literal(86400.0)
    return cast(func.extract("epoch", end - begin), Float)


@dataclass(frozen=True)
class RaisedAlerts:
    """The alerts raised in a period: the order of each alert about an order, and each stored
    delay (`DELAY_STEPS`, integer microseconds) of the violation alerts that reached its step."""

    order_ids: npt.NDArray[np.int64]
    delays: dict[str, npt.NDArray[np.int64]]


def alerts_raised(session: Session, start: dt.datetime, end: dt.datetime) -> RaisedAlerts:
    """Alerts raised in [start, end), in one pass over them."""
    about_violation = Alert.kind == AlertKind.VIOLATION.value
    order_ids, *delays = integer_arrays(
        session,
        Alert.raised_at,
        start,
        end,
        [
            Alert.order_id,
            *(case((about_violation, getattr(Alert, name))) for name in DELAY_STEPS),
        ],
    )
    return RaisedAlerts(order_ids, dict(zip(DELAY_STEPS, delays, strict=True)))


def alerts_overdue(session: Session, as_at: dt.datetime) -> int:
    """Alerts raised before `as_at`, due an outcome before it, with none recorded. An alert is
    open or acknowledged until its outcome is recorded (then resolved) or it is withdrawn, so
    the status index finds them without reading every resolved alert."""
    statement = select(func.count()).where(
        Alert.status.in_((AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value)),
        Alert.raised_at < as_at,
        Alert.outcome_at.is_(None),
        Alert.outcome_due_at < as_at,
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
