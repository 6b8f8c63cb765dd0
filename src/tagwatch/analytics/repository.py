"""All the SQL of the daily export: one UTC day of each table, streamed in chunks.

Rows come in chunks of `chunk_rows` through server-side cursors on PostgreSQL (`yield_per`),
so a national day of fixes never sits in memory at once. People's references are looked up
per chunk for the allocations it names; nothing else about a person is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Row, Text, cast, select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert
from tagwatch.cases.models import Allocation, Condition, Device, Person
from tagwatch.compliance.models import Violation
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix

# Bound for IN lists: well under SQLite's and PostgreSQL's parameter limits.
_IN_LIST = 900


@dataclass(frozen=True)
class DayWindow:
    """One UTC day: [start, end)."""

    day: dt.date

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time(), dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=1)

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)


def _chunks(
    session: Session, statement: Executable, chunk_rows: int
) -> Iterator[Sequence[Row[Any]]]:
    # Core, not the ORM: rows are only read, and the ORM's per-row bookkeeping costs a third.
    result = session.connection().execute(statement.execution_options(yield_per=chunk_rows))
    yield from result.partitions()


def fixes(session: Session, window: DayWindow, chunk_rows: int) -> Iterator[Sequence[Row[Any]]]:
    statement = (
        select(
            GpsFix.id,
            GpsFix.allocation_id,
            GpsFix.device_serial,
            GpsFix.t_ms,
            GpsFix.received_ms,
            GpsFix.lat,
            GpsFix.lon,
            GpsFix.accuracy_m,
            GpsFix.source,
            # As text: parsing it here is several times faster than the JSON type's parser.
            cast(GpsFix.extras, Text).label("extras"),
            GpsFix.implausible_reason,
        )
        .where(GpsFix.t_ms >= window.start_ms, GpsFix.t_ms < window.end_ms)
        .order_by(GpsFix.t_ms, GpsFix.id)
    )
    return _chunks(session, statement, chunk_rows)


def events(session: Session, window: DayWindow, chunk_rows: int) -> Iterator[Sequence[Row[Any]]]:
    statement = (
        select(
            DeviceEvent.id,
            DeviceEvent.allocation_id,
            DeviceEvent.device_serial,
            DeviceEvent.type,
            DeviceEvent.t_ms,
            DeviceEvent.received_ms,
            DeviceEvent.payload,
        )
        .where(DeviceEvent.t_ms >= window.start_ms, DeviceEvent.t_ms < window.end_ms)
        .order_by(DeviceEvent.t_ms, DeviceEvent.id)
    )
    return _chunks(session, statement, chunk_rows)


def violations(
    session: Session, window: DayWindow, chunk_rows: int
) -> Iterator[Sequence[Row[Any]]]:
    """Violations that started on the day, with the device serial, the person's reference
    and the type of the condition broken (none for device rules)."""
    statement = (
        select(
            Violation.id,
            Person.ref.label("person_ref"),
            Device.serial.label("device_serial"),
            Violation.rule_id,
            Violation.rule_version,
            Violation.rule_set_version,
            Condition.type.label("condition_type"),
            Violation.start,
            Violation.end,
            Violation.severity,
            Violation.status,
            Violation.needs_review,
            Violation.withdrawn_at,
            Violation.first_found_at,
            Violation.evaluated_at,
            Violation.evidence_fixes,
            Violation.evidence_events,
        )
        .outerjoin(Person, Person.id == Violation.person_id)
        .outerjoin(Allocation, Allocation.id == Violation.allocation_id)
        .outerjoin(Device, Device.id == Allocation.device_id)
        .outerjoin(Condition, Condition.id == Violation.condition_key)
        .where(Violation.start >= window.start, Violation.start < window.end)
        .order_by(Violation.start, Violation.id)
    )
    return _chunks(session, statement, chunk_rows)


def alerts(session: Session, window: DayWindow, chunk_rows: int) -> Iterator[Sequence[Row[Any]]]:
    """Alerts whose event (violation start, fitting deadline) fell on the day."""
    statement = (
        select(
            Alert.id,
            Alert.kind,
            Alert.violation_id,
            Person.ref.label("person_ref"),
            Alert.violation_type,
            Alert.severity,
            Alert.status,
            Alert.needs_tamper_review,
            Alert.delivery_unit_code,
            Alert.event_at,
            Alert.received_at,
            Alert.evaluated_at,
            Alert.raised_at,
            Alert.notified_at,
            Alert.acknowledged_at,
            Alert.escalated_at,
            Alert.tamper_finding,
            Alert.outcome_due_at,
            Alert.outcome,
            Alert.outcome_at,
            Alert.violation_ended_at,
            Alert.violation_withdrawn_at,
        )
        .outerjoin(Person, Person.id == Alert.person_id)
        .where(Alert.event_at >= window.start, Alert.event_at < window.end)
        .order_by(Alert.event_at, Alert.id)
    )
    return _chunks(session, statement, chunk_rows)


def person_refs_of_allocations(session: Session, allocation_ids: Iterable[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in _parts(sorted(set(allocation_ids))):
        rows = session.execute(
            select(Allocation.id, Person.ref)
            .join(Person, Person.id == Allocation.person_id)
            .where(Allocation.id.in_(part))
        )
        found.update({allocation_id: ref for allocation_id, ref in rows})
    return found


@dataclass(frozen=True)
class FixPlace:
    t_ms: int
    lat: float
    lon: float
    accuracy_m: float


def fix_places(session: Session, fix_ids: Iterable[int]) -> dict[int, FixPlace]:
    found: dict[int, FixPlace] = {}
    for part in _parts(sorted(set(fix_ids))):
        rows = session.execute(
            select(GpsFix.id, GpsFix.t_ms, GpsFix.lat, GpsFix.lon, GpsFix.accuracy_m).where(
                GpsFix.id.in_(part)
            )
        )
        found.update({fix_id: FixPlace(t, lat, lon, acc) for fix_id, t, lat, lon, acc in rows})
    return found


def violation_rule_set_versions(session: Session, window: DayWindow) -> list[str]:
    rows = session.scalars(
        select(Violation.rule_set_version)
        .where(Violation.start >= window.start, Violation.start < window.end)
        .distinct()
    )
    return sorted(rows)


def _parts(values: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(values), _IN_LIST):
        yield values[i : i + _IN_LIST]
