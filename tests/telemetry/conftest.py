"""Telemetry fixtures: a case with an allocated device."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session
from telemetry_records import T0

from tagwatch.cases.models import Allocation, Device, Order, Person

_numbers = itertools.count(1)


@pytest.fixture
def make_allocation(db: Session) -> Callable[..., Allocation]:
    """A person, order, device and allocation of that device (from `fitted_at`)."""

    def build(
        serial: str,
        fitted_at: dt.datetime = T0 - dt.timedelta(days=1),
        removed_at: dt.datetime | None = None,
    ) -> Allocation:
        n = next(_numbers)
        person = Person(
            ref=f"TW-TELE-{n}",
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
            ref=f"ORD-TELE-{n}",
            person_id=person.id,
            type="community_order",
            status="active",
            notifying_org_kind="court",
            notifying_org_name="Westminster Magistrates' Court",
            responsible_org_kind="probation",
            responsible_org_name="London Probation",
            region_code="LDN",
            delivery_unit_code="LDN-CAM",
            responsible_officer="officer",
            start_date=dt.date(2026, 1, 1),
            end_date=dt.date(2027, 1, 1),
        )
        db.add(order)
        device = db.query(Device).filter_by(serial=serial).one_or_none()
        if device is None:
            device = Device(serial=serial, type="gps_tag", model="T1", batch="B1")
            db.add(device)
        db.flush()
        allocation = Allocation(
            device_id=device.id,
            order_id=order.id,
            person_id=person.id,
            fitted_at=fitted_at,
            removed_at=removed_at,
        )
        db.add(allocation)
        db.flush()
        return allocation

    return build
