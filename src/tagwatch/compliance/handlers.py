"""What compliance does when upstream domains report a change: re-evaluate, once.

Every handler only notes which allocations need evaluating and from when; the evaluation
itself is deferred (`tagwatch.events.defer`) and runs once when the outermost publish or
batch ends, so an allocation touched by several events in one transaction (its allocation
recorded, its early records attached, its order changed) is evaluated once, from the
earliest moment any of them asked for. Evaluating more than asked is harmless (it
re-derives from stored records); evaluating less is what this must never do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.cases.events import AllocationRecorded, OrderChanged
from tagwatch.compliance import service
from tagwatch.compliance.context import allocation_ids_for_order
from tagwatch.db.base import utcnow
from tagwatch.events import defer
from tagwatch.telemetry.events import TelemetryStored

# Earlier than any allocation: evaluation starts at the later of this and when it was watched.
FROM_THE_START = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class PendingEvaluation:
    """Allocations to evaluate when the events settle: allocation -> (since, evaluate at).
    Several requests for one allocation merge into the earliest since and the latest time."""

    windows: dict[int, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)
    # Allocations asked for only because records arrived: rules that read none of the kinds
    # of record that arrived keep their violations (see `service.evaluate_allocations`).
    records_only: set[int] = field(default_factory=set)

    def add(
        self,
        allocation_id: int,
        since: dt.datetime,
        now: dt.datetime,
        *,
        records_only: bool = False,
    ) -> None:
        earlier = self.windows.get(allocation_id)
        if not records_only:
            self.records_only.discard(allocation_id)
        elif earlier is None:
            self.records_only.add(allocation_id)
        if earlier is not None:
            since, now = min(since, earlier[0]), max(now, earlier[1])
        self.windows[allocation_id] = (since, now)

    def run(self, session: Session) -> None:
        by_time: dict[dt.datetime, dict[int, dt.datetime]] = {}
        for allocation_id, (since, now) in self.windows.items():
            by_time.setdefault(now, {})[allocation_id] = since
        for now in sorted(by_time):
            service.evaluate_and_publish(session, by_time[now], now, records_only=self.records_only)


def pending(session: Session) -> PendingEvaluation:
    return defer(session, PendingEvaluation, PendingEvaluation)


def on_telemetry_stored(session: Session, event: TelemetryStored) -> None:
    """Evaluate each touched allocation from the earliest record the change touched."""
    evaluations = pending(session)
    for allocation_id, (earliest, _) in event.windows.items():
        evaluations.add(allocation_id, earliest, event.received_at, records_only=True)


def on_allocation_recorded(session: Session, event: AllocationRecorded) -> None:
    """A fitting or removal changes what the allocation is accountable for: all of it."""
    pending(session).add(event.allocation_id, FROM_THE_START, utcnow())


def on_order_changed(session: Session, event: OrderChanged) -> None:
    """New conditions apply to the whole of every allocation of the order."""
    evaluations = pending(session)
    now = utcnow()
    for allocation_id in allocation_ids_for_order(session, event.order_id):
        evaluations.add(allocation_id, FROM_THE_START, now)


HANDLERS: dict[type, list[Any]] = {
    TelemetryStored: [on_telemetry_stored],
    AllocationRecorded: [on_allocation_recorded],
    OrderChanged: [on_order_changed],
}
