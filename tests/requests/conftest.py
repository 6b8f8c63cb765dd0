"""Data request fixtures: tagged people with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
_numbers = itertools.count(1)

POLICE = frozenset({"crime:read", "request:create", "request:read"})
APPROVER = frozenset({"request:read", "request:approve", "report:read"})


def caller(
    username: str, permissions: frozenset[str] = frozenset(PERMISSIONS), **scope: object
) -> Principal:
    return Principal(
        user_id=None,
        username=username,
        display_name=username.title(),
        roles=frozenset({"test"}),
        permissions=permissions,
        **scope,  # type: ignore[arg-type]
    )


@pytest.fixture
def make_wearer(db: Session) -> Callable[..., Allocation]:
    """A person (with CRN and PNC) on an order, wearing a GPS tag from a day before T0."""

    def build(restricted: bool = False) -> Allocation:
        n = next(_numbers)
        person = Person(
            ref=f"TWREQ{n:05d}",
            crn=f"R{n:06d}",
            pnc=f"2026/{n:07d}Q",
            restricted=restricted,
            date_of_birth=dt.date(1990, 1, n % 28 + 1),
            sex="male",
            gender="man",
            ethnicity="W1",
            disability="not_recorded",
            nationality="GBR",
            religion="not_recorded",
            language="en",
        )
        db.add(person)
        db.flush()
        order = Order(
            ref=f"ORD-REQ-{n}",
            person_id=person.id,
            type="community_order",
            status="active",
            notifying_org_kind="court",
            notifying_org_name="Leeds Magistrates' Court",
            responsible_org_kind="probation",
            responsible_org_name="Yorkshire Probation",
            region_code="YH",
            delivery_unit_code="YH-LDS",
            responsible_officer="someone",
            start_date=dt.date(2026, 1, 1),
            end_date=dt.date(2027, 1, 1),
        )
        device = Device(serial=f"GPS-REQ-{n}", type="gps_tag", model="T1", batch="B1")
        db.add_all([order, device])
        db.flush()
        allocation = Allocation(
            device_id=device.id,
            order_id=order.id,
            person_id=person.id,
            fitted_at=T0 - dt.timedelta(days=1),
        )
        db.add(allocation)
        db.flush()
        return allocation

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
