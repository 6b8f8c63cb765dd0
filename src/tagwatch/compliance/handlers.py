"""What compliance does when upstream domains report a change: re-evaluate."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tagwatch.cases.events import AllocationRecorded, OrderChanged
from tagwatch.compliance import service
from tagwatch.compliance.context import allocation_ids_for_order, load_context
from tagwatch.db.base import utcnow
from tagwatch.telemetry.events import TelemetryStored


def on_telemetry_stored(session: Session, event: TelemetryStored) -> None:
    """Evaluate each touched allocation from the earliest record the change touched."""
    windows = {allocation_id: earliest for allocation_id, (earliest, _) in event.windows.items()}
    service.evaluate_and_publish(session, windows, event.received_at)


def on_allocation_recorded(session: Session, event: AllocationRecorded) -> None:
    """A fitting or removal changes what the allocation is accountable for: all of it."""
    service.evaluate_and_publish(session, {event.allocation_id: event.fitted_at}, utcnow())


def on_order_changed(session: Session, event: OrderChanged) -> None:
    """New conditions apply to the whole of every allocation of the order."""
    windows = {}
    for allocation_id in allocation_ids_for_order(session, event.order_id):
        context = load_context(session, allocation_id)
        if context is not None:
            windows[allocation_id] = context.fitted_at
    service.evaluate_and_publish(session, windows, utcnow())


HANDLERS: dict[type, list[Any]] = {
    TelemetryStored: [on_telemetry_stored],
    AllocationRecorded: [on_allocation_recorded],
    OrderChanged: [on_order_changed],
}
