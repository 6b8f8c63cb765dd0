"""What telemetry does when the case record changes: attach records that arrived early."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tagwatch.cases.events import AllocationRecorded
from tagwatch.telemetry.service import attach_allocation


def on_allocation_recorded(session: Session, event: AllocationRecorded) -> None:
    """Records the device sent before its allocation was recorded belong to it now."""
    attach_allocation(
        session,
        allocation_id=event.allocation_id,
        device_serial=event.device_serial,
        fitted_at=event.fitted_at,
        removed_at=event.removed_at,
    )


HANDLERS: dict[type, list[Any]] = {AllocationRecorded: [on_allocation_recorded]}
