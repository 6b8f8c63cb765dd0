"""Compliance at a glance for many people at once: one statement for all the measures.

The caseload shows, per person, open violations, unacknowledged alerts and when the device
last reported. Asking each domain once per person would be hundreds of queries on a manager's
caseload, so one read-only statement answers every measure for the people shown, each measure
a correlated subquery that is an index seek per person (the latest record of an allocation is
the top of its (allocation_id, t_ms) index, never a scan of its telemetry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from tagwatch.alerts.models import Alert, AlertStatus
from tagwatch.cases.models import Allocation, Person
from tagwatch.compliance.models import Violation
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix

# A device silent for longer than this is flagged on the caseload.
STALE_AFTER = dt.timedelta(hours=1)
_CHUNK = 500


@dataclass(frozen=True)
class Glance:
    open_violations: int = 0
    unacknowledged_alerts: int = 0
    fitted_devices: int = 0
    last_seen: dt.datetime | None = None

    def stale(self, now: dt.datetime) -> bool:
        return self.fitted_devices > 0 and (
            self.last_seen is None or now - self.last_seen > STALE_AFTER
        )

    @property
    def device_status(self) -> str:
        return "No data yet" if self.fitted_devices else "No device fitted"


def _chunks(ids: Collection[int]) -> list[list[int]]:
    ordered = sorted(ids)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]


def _latest(model: type[GpsFix] | type[DeviceEvent]) -> Select[int | None]:
    """The latest record time over a person's fitted allocations, one index seek each."""
    per_allocation = (
        select(func.max(model.t_ms))
        .where(model.allocation_id == Allocation.id)
        .correlate(Allocation)
        .scalar_subquery()
    )
    return (
        select(func.max(per_allocation))
        .where(Allocation.person_id == Person.id, Allocation.removed_at.is_(None))
        .correlate(Person)
    )


def _count(
    person_column: QueryableAttribute[Any], *where: ColumnElement[bool]
) -> ScalarSelect[int]:
    """How many rows name the person, among those matching `where`."""
    return (
        select(func.count())
        .where(person_column == Person.id, *where)
        .correlate(Person)
        .scalar_subquery()
    )


# Built once: the statement and its cache key are reused, only the ids change.
_GLANCE = select(
    Person.id,
    _count(Violation.person_id, Violation.end.is_(None), Violation.withdrawn_at.is_(None)),
    _count(Alert.person_id, Alert.status == AlertStatus.OPEN),
    _count(Allocation.person_id, Allocation.removed_at.is_(None)),
    _latest(GpsFix).scalar_subquery(),
    _latest(DeviceEvent).scalar_subquery(),
).where(Person.id.in_(bindparam("ids", expanding=True)))


def glance_for(session: Session, person_ids: Collection[int]) -> dict[int, Glance]:
    found: dict[int, Glance] = {}
    for part in _chunks(person_ids):
        # Plain rows, on the session's connection: the ORM's result handling is for objects.
        rows = session.connection().execute(_GLANCE, {"ids": part})
        for person_id, violations, alerts, fitted, fix_ms, event_ms in rows:
            latest = max((t for t in (fix_ms, event_ms) if t is not None), default=None)
            found[person_id] = Glance(
                open_violations=violations,
                unacknowledged_alerts=alerts,
                fitted_devices=fitted,
                last_seen=None if latest is None else from_ms(int(latest)),
            )
    return {person_id: found.get(person_id, Glance()) for person_id in person_ids}
