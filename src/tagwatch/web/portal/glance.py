"""Compliance at a glance for many people at once: one grouped query per measure.

The caseload shows, per person, open violations, unacknowledged alerts and when the device
last reported. Asking each domain once per person would be hundreds of queries on a manager's
caseload, so these read-only counts are grouped over the people shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert, AlertStatus
from tagwatch.cases.models import Allocation
from tagwatch.compliance.models import Violation
from tagwatch.telemetry.repository import last_record_times

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


def glance_for(session: Session, person_ids: Collection[int]) -> dict[int, Glance]:
    violations: dict[int, int] = {}
    alerts: dict[int, int] = {}
    fitted: dict[int, list[int]] = {}
    for part in _chunks(person_ids):
        violations.update(
            session.execute(
                select(Violation.person_id, func.count())
                .where(
                    Violation.person_id.in_(part),
                    Violation.end.is_(None),
                    Violation.withdrawn_at.is_(None),
                )
                .group_by(Violation.person_id)
            ).all()
        )
        alerts.update(
            session.execute(
                select(Alert.person_id, func.count())
                .where(Alert.person_id.in_(part), Alert.status == AlertStatus.OPEN)
                .group_by(Alert.person_id)
            ).all()
        )
        for person_id, allocation_id in session.execute(
            select(Allocation.person_id, Allocation.id).where(
                Allocation.person_id.in_(part), Allocation.removed_at.is_(None)
            )
        ):
            fitted.setdefault(person_id, []).append(allocation_id)
    seen = last_record_times(session, [a for ids in fitted.values() for a in ids])
    answer = {}
    for person_id in person_ids:
        times = [seen[a][0] for a in fitted.get(person_id, []) if seen.get(a, (None,))[0]]
        answer[person_id] = Glance(
            open_violations=int(violations.get(person_id, 0)),
            unacknowledged_alerts=int(alerts.get(person_id, 0)),
            fitted_devices=len(fitted.get(person_id, [])),
            last_seen=max(times) if times else None,  # type: ignore[type-var]
        )
    return answer
