"""All compliance SQL: violations, absences, suspensions, and the few telemetry look-ups the
evaluation windows need (the latest record before a moment). Look-ups take many allocations
at once: an evaluation runs for every allocation a batch touched, in a handful of queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from tagwatch.compliance.models import AuthorisedAbsence, Violation, ZoneSuspension
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.repository import RecordsBefore, first_record_ms, records_before

_IDS_PER_QUERY = 500
_ROWS_PER_QUERY = 900


def standing_since(
    session: Session, moments: Mapping[int, dt.datetime]
) -> dict[int, list[tuple[str, dt.datetime, dt.datetime | None]]]:
    """Per allocation: (rule, start, end) of its standing violations still running at or
    after its moment (the ones an evaluation from there may have to re-derive whole)."""
    found: dict[int, list[tuple[str, dt.datetime, dt.datetime | None]]] = {}
    for part in _chunks(sorted(moments)):
        earliest = min(moments[a] for a in part)
        query = select(
            Violation.allocation_id, Violation.rule_id, Violation.start, Violation.end
        ).where(
            Violation.allocation_id.in_(part),
            Violation.withdrawn_at.is_(None),
            or_(Violation.end.is_(None), Violation.end >= earliest),
        )
        for allocation_id, rule_id, start, end in session.execute(query):
            if end is None or end >= moments[allocation_id]:
                found.setdefault(allocation_id, []).append((rule_id, start, end))
    return found


def record_kinds_since(session: Session, moments: Mapping[int, dt.datetime]) -> dict[int, set[str]]:
    """Per allocation: the kinds of record it has observed at or after its moment ("fix" or a
    device event type); allocations with none are left out."""
    found: dict[int, set[str]] = {}
    for part in _chunks(sorted(moments)):
        params = {}
        rows = []
        for i, allocation_id in enumerate(part):
            params[f"a{i}"], params[f"t{i}"] = allocation_id, to_ms(moments[allocation_id])
            rows.append(f"(CAST(:a{i} AS BIGINT), CAST(:t{i} AS BIGINT))")
        # Index ranges on (allocation_id, t_ms) from each moment on.
        sql = text(
            f"WITH w(a, t) AS (VALUES {', '.join(rows)})"
            " SELECT w.a, e.type FROM w JOIN device_event e"
            " ON e.allocation_id = w.a AND e.t_ms >= w.t GROUP BY w.a, e.type"
            " UNION ALL SELECT w.a, 'fix' FROM w WHERE EXISTS"
            " (SELECT 1 FROM gps_fix f WHERE f.allocation_id = w.a AND f.t_ms >= w.t)"
        )
        for allocation_id, kind in session.execute(sql, params):
            found.setdefault(int(allocation_id), set()).add(str(kind))
    return found


def earliest_record_ms(session: Session, allocation_ids: Collection[int]) -> dict[int, int]:
    """Per allocation with any record: the observed time of its first record of any kind."""
    return first_record_ms(session, allocation_ids)


def latest_records_before(
    session: Session, moments: Mapping[int, dt.datetime], *, rf: bool = False
) -> dict[int, RecordsBefore]:
    """Per allocation: its latest record of any kind and latest accepted fix observed before
    its moment (and its latest rf record, when `rf`)."""
    return records_before(session, {a: to_ms(moment) for a, moment in moments.items()}, rf=rf)


class StoredViolation(NamedTuple):
    """A stored violation's natural key and what an evaluation may change, read without the
    ORM: reconciliation compares many of them and writes only the differences."""

    id: int
    allocation_id: int
    rule_id: str
    condition_key: int
    start: dt.datetime
    end: dt.datetime | None
    rule_version: str
    rule_set_version: str
    severity: str
    status: str
    needs_review: bool
    evidence_fixes: list[int]
    evidence_events: list[int]
    withdrawn_at: dt.datetime | None


_STORED_COLUMNS = [getattr(Violation, name) for name in StoredViolation._fields]
_VIOLATIONS = cast(Table, Violation.__table__)


def violation_keys_since(
    session: Session, moments: Mapping[int, dt.datetime]
) -> list[tuple[int, int, str, dt.datetime]]:
    """(id, allocation, rule, start) of every violation of each allocation starting at or
    after its moment, withdrawn included: cheap to read, to choose which to read whole."""
    found: list[tuple[int, int, str, dt.datetime]] = []
    for part in _chunks(sorted(moments)):
        earliest = min(moments[a] for a in part)
        query = select(
            Violation.id, Violation.allocation_id, Violation.rule_id, Violation.start
        ).where(Violation.allocation_id.in_(part), Violation.start >= earliest)
        found.extend(
            (violation_id, allocation_id, rule_id, start)
            for violation_id, allocation_id, rule_id, start in session.execute(query)
            if start >= moments[allocation_id]
        )
    return found


def violations_by_id(session: Session, ids: Collection[int]) -> list[StoredViolation]:
    make = StoredViolation._make
    found: list[StoredViolation] = []
    for part in _chunks(sorted(ids), _ROWS_PER_QUERY):
        query = select(*_STORED_COLUMNS).where(Violation.id.in_(part))
        found.extend(make(row) for row in session.execute(query))
    return found


def insert_violations(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert violations in one statement (batched by the driver); their ids, in order."""
    if not rows:
        return []
    statement = insert(_VIOLATIONS).returning(_VIOLATIONS.c.id, sort_by_parameter_order=True)
    return [int(i) for i in session.execute(statement, list(rows)).scalars()]


def update_violations(session: Session, changes: Mapping[int, Mapping[str, Any]]) -> None:
    """Rewrite changed columns of violations by id: one executemany per set of columns."""
    table = _VIOLATIONS
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for violation_id, values in changes.items():
        # Bound names must differ from the column names an UPDATE binds itself.
        row = {f"new_{name}": value for name, value in values.items()}
        row["row_id"] = violation_id
        by_shape.setdefault(tuple(sorted(values)), []).append(row)
    for shape, rows in by_shape.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}") for name in shape})
        )
        session.execute(statement, rows)
    _expire(session, list(changes))


def mark_violations(session: Session, ids: Collection[int], **values: Any) -> None:
    """Set the same values on many violations (evaluated or withdrawn at a moment)."""
    table = _VIOLATIONS
    ordered = sorted(ids)
    for part in _chunks(ordered, _ROWS_PER_QUERY):
        session.execute(update(table).where(table.c.id.in_(part)).values(**values))
    _expire(session, ordered)


def _expire(session: Session, ids: Collection[int]) -> None:
    """Violations written with Core statements: loaded copies in the session reload them."""
    for violation_id in ids:
        cached = session.identity_map.get(identity_key(Violation, violation_id))
        if cached is not None:
            session.expire(cached)


def _chunks(ids: Sequence[int], size: int = _IDS_PER_QUERY) -> Iterator[Sequence[int]]:
    for offset in range(0, len(ids), size):
        yield ids[offset : offset + size]


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


def absences_for_orders(
    session: Session, order_ids: Collection[int], start: dt.datetime, end: dt.datetime
) -> dict[int, list[AuthorisedAbsence]]:
    """Per order: its authorised absences (not cancelled) overlapping [start, end)."""
    found: dict[int, list[AuthorisedAbsence]] = {}
    for part in _chunks(sorted(set(order_ids))):
        query = select(AuthorisedAbsence).where(
            AuthorisedAbsence.order_id.in_(part),
            AuthorisedAbsence.cancelled_at.is_(None),
            AuthorisedAbsence.end > start,
            AuthorisedAbsence.start < end,
        )
        for absence in session.execute(query.order_by(AuthorisedAbsence.start)).scalars():
            found.setdefault(absence.order_id, []).append(absence)
    return found


def suspensions_for_orders(
    session: Session, order_ids: Collection[int], start: dt.datetime, end: dt.datetime
) -> dict[int, list[ZoneSuspension]]:
    """Per order: its zone suspensions (not cancelled) overlapping [start, end)."""
    found: dict[int, list[ZoneSuspension]] = {}
    for part in _chunks(sorted(set(order_ids))):
        query = select(ZoneSuspension).where(
            ZoneSuspension.order_id.in_(part),
            ZoneSuspension.cancelled_at.is_(None),
            ZoneSuspension.end > start,
            ZoneSuspension.start < end,
        )
        for suspension in session.execute(query.order_by(ZoneSuspension.start)).scalars():
            found.setdefault(suspension.order_id, []).append(suspension)
    return found


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


class ViolationRow(NamedTuple):
    """What a person's page shows of a violation (its summary and timeline)."""

    id: int
    rule_id: str
    status: str
    condition_key: int
    start: dt.datetime
    end: dt.datetime | None
    evaluated_at: dt.datetime


_PERSON_VIOLATIONS = (
    select(
        Violation.id,
        Violation.rule_id,
        Violation.status,
        Violation.condition_key,
        Violation.start,
        Violation.end,
        Violation.evaluated_at,
    )
    .where(
        Violation.person_id == bindparam("person_id"),
        or_(Violation.end.is_(None), Violation.end > bindparam("since")),
        Violation.withdrawn_at.is_(None),
    )
    .order_by(Violation.start.desc(), Violation.id.desc())
)


def person_violations_since(
    session: Session, person_id: int, since: dt.datetime
) -> list[ViolationRow]:
    """The person's violations standing at or after `since`, latest first, as plain rows
    (`violation_query(person_id=..., start=since)` without the objects)."""
    rows = session.connection().execute(
        _PERSON_VIOLATIONS, {"person_id": person_id, "since": since}
    )
    return [ViolationRow(*row) for row in rows]


def count(session: Session, query: Select[Any]) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(session.execute(counted).scalar_one())


def find_violations(
    session: Session, query: Select[Any], limit: int, offset: int
) -> list[Violation]:
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def get_violation(session: Session, violation_id: int) -> Violation | None:
    return session.get(Violation, violation_id)
