"""Crime fixtures: people wearing tags, with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from crime_scene import SCENE, T0
from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.geo.projection import to_wgs84
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

_numbers = itertools.count(1)


@pytest.fixture
def make_wearer(db: Session) -> Callable[..., Allocation]:
    """A person with an order and a GPS tag allocated from the day before T0."""

    def build(ref: str | None = None) -> Allocation:
        n = next(_numbers)
        person = Person(
            ref=ref or f"TW-CRIME-{n}",
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
            ref=f"ORD-CRIME-{n}",
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
        device = Device(serial=f"GPS-CRIME-{n}", type="gps_tag", model="T1", batch="B1")
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
def add_fixes(db: Session) -> Callable[..., list[int]]:
    """Store fixes for an allocation: (minutes after T0, metres east, metres north of SCENE)."""

    def build(
        allocation: Allocation, points: list[tuple[float, float, float]], accuracy: float = 6.0
    ) -> list[int]:
        serial = db.get(Device, allocation.device_id).serial  # type: ignore[union-attr]
        east = [SCENE[0] + p[1] for p in points]
        north = [SCENE[1] + p[2] for p in points]
        lon, lat = to_wgs84(east, north)
        rows = []
        for (minutes, _, _), lo, la in zip(points, lon.tolist(), lat.tolist(), strict=True):
            t_ms = to_ms(T0 + dt.timedelta(minutes=minutes))
            rows.append(
                GpsFix(
                    dedupe_key=f"{serial}|gps|{t_ms}",
                    device_serial=serial,
                    allocation_id=allocation.id,
                    t_ms=t_ms,
                    received_ms=t_ms,
                    lat=la,
                    lon=lo,
                    accuracy_m=accuracy,
                    source="gnss",
                )
            )
        db.add_all(rows)
        db.flush()
        return [r.id for r in rows]

    return build
