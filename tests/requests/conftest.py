"""Data request fixtures: tagged people with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from request_cases import T0
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.cases.models import Allocation, Device
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

_numbers = itertools.count(1)


@pytest.fixture
def make_wearer(db: Session) -> Callable[..., Allocation]:
    """A person (with CRN and PNC) on an order, wearing a GPS tag from a day before T0."""

    def build(restricted: bool = False) -> Allocation:
        n = next(_numbers)
        return allocate(
            db,
            person_ref=f"TWREQ{n:05d}",
            order_ref=f"ORD-REQ-{n}",
            serial=f"GPS-REQ-{n}",
            fitted_at=T0 - dt.timedelta(days=1),
            number=n,
            person={"crn": f"R{n:06d}", "pnc": f"2026/{n:07d}Q", "restricted": restricted},
            order={
                "notifying_org_name": "Leeds Magistrates' Court",
                "responsible_org_name": "Yorkshire Probation",
                "region_code": "YH",
                "delivery_unit_code": "YH-LDS",
                "responsible_officer": "someone",
            },
        )

    return build


@pytest.fixture
def add_fixes(db: Session) -> Callable[..., None]:
    """Fixes for an allocation at the given minutes after T0 (implausible ones if asked)."""

    def build(
        allocation: Allocation, minutes: list[float], implausible: frozenset[float] = frozenset()
    ) -> None:
        serial = db.get(Device, allocation.device_id).serial  # type: ignore[union-attr]
        rows = []
        for i, m in enumerate(minutes):
            t_ms = to_ms(T0 + dt.timedelta(minutes=m))
            rows.append(
                GpsFix(
                    dedupe_key=f"{serial}|gps|{t_ms}",
                    device_serial=serial,
                    allocation_id=allocation.id,
                    t_ms=t_ms,
                    received_ms=t_ms,
                    lat=53.79 + (i % 50) * 1e-4,
                    lon=-1.54 + (i % 70) * 1e-4,
                    accuracy_m=7.0,
                    source="gnss",
                    implausible_reason="speed" if m in implausible else None,
                )
            )
        db.add_all(rows)
        db.flush()

    return build
