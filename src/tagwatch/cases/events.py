"""Events the case record publishes; telemetry and compliance subscribe to them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class AllocationRecorded:
    """An allocation was created or its removal recorded."""

    allocation_id: int
    order_id: int
    device_serial: str
    fitted_at: dt.datetime
    removed_at: dt.datetime | None


@dataclass(frozen=True)
class OrderChanged:
    """An order reached a new version (its terms, conditions, allocations or status)."""

    order_id: int
    version: int
