"""One way for tests to put a person on an order wearing a device: the chain many domains need."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Device, Order, Person


def allocate(
    db: Session,
    *,
    person_ref: str,
    order_ref: str,
    serial: str,
    fitted_at: dt.datetime,
    removed_at: dt.datetime | None = None,
    number: int = 1,
    person: dict[str, Any] | None = None,
    order: dict[str, Any] | None = None,
) -> Allocation:
    """A person on an active community order, with a GPS tag (reused when the serial exists)
    allocated from `fitted_at`. `person` and `order` override their default fields."""
    wearer = Person(
        **{
            "ref": person_ref,
            "date_of_birth": dt.date(1990, 1, number % 28 + 1),
            "sex": "male",
            "gender": "man",
            "ethnicity": "W1",
            "disability": "not_recorded",
            "nationality": "GBR",
            "religion": "not_recorded",
            "language": "en",
            **(person or {}),
        }
    )
    db.add(wearer)
    db.flush()
    on_order = Order(
        **{
            "ref": order_ref,
            "person_id": wearer.id,
            "type": "community_order",
            "status": "active",
            "notifying_org_kind": "court",
            "notifying_org_name": "Westminster Magistrates' Court",
            "responsible_org_kind": "probation",
            "responsible_org_name": "London Probation",
            "region_code": "LDN",
            "delivery_unit_code": "LDN-CAM",
            "responsible_officer": "officer",
            "start_date": dt.date(2026, 1, 1),
            "end_date": dt.date(2027, 1, 1),
            **(order or {}),
        }
    )
    db.add(on_order)
    device = db.query(Device).filter_by(serial=serial).one_or_none()
    if device is None:
        device = Device(serial=serial, type="gps_tag", model="T1", batch="B1")
        db.add(device)
    db.flush()
    allocation = Allocation(
        device_id=device.id,
        order_id=on_order.id,
        person_id=wearer.id,
        fitted_at=fitted_at,
        removed_at=removed_at,
    )
    db.add(allocation)
    db.flush()
    return allocation
