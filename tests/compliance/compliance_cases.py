"""A monitored person in the store, and records fed through the real ingestion pipeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.cases.models import Address, Allocation, Condition, Device, Order, Person
from tagwatch.geo.projection import to_wgs84
from tagwatch.settings import Settings
from tagwatch.telemetry.models import DeviceEvent, GpsFix
from tagwatch.telemetry.service import ingest
from tagwatch.telemetry.sources import items_from_body

HOME_BNG = (530_000.0, 180_000.0)
# A 300 m square exclusion zone 1 km east of home.
ZONE_BNG = [(531_000, 180_000), (531_300, 180_000), (531_300, 180_300), (531_000, 180_300)]
EVENINGS = [
    {"day": day, "start": "19:00", "end": "07:00"}
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
]


def wgs84(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    lon, lat = to_wgs84([p[0] for p in points], [p[1] for p in points])
    return [[round(float(a), 8), round(float(b), 8)] for a, b in zip(lon, lat, strict=True)]


@dataclass
class Case:
    person_id: int
    order_id: int
    allocation_id: int
    curfew_id: int
    zone_id: int
    serial: str


def make_case(
    session: Session,
    fitted_at: dt.datetime,
    *,
    device_type: str = "gps_tag",
    timetable: list[dict[str, str]] | None = None,
    serial: str = "GPS-T-0001",
    removed_at: dt.datetime | None = None,
    recorded_at: dt.datetime | None = None,
) -> Case:
    person = Person(
        ref="TW000001",
        date_of_birth=dt.date(1990, 1, 1),
        sex="male",
        gender="man",
        ethnicity="W1",
        disability="no",
        nationality="GBR",
        religion="none",
        language="en",
    )
    session.add(person)
    session.flush()
    [[lon, lat]] = wgs84([HOME_BNG])
    home = Address(
        person_id=person.id,
        ref="home",
        line1="1 Test Street",
        town="London",
        postcode="SW1A 1AA",
        lat=lat,
        lon=lon,
    )
    order = Order(
        ref="ORD1",
        person_id=person.id,
        type="home_detention_curfew",
        status="active",
        notifying_org_kind="prison",
        notifying_org_name="HMP Test",
        responsible_org_kind="probation",
        responsible_org_name="London",
        region_code="LDN",
        delivery_unit_code="LDN-1",
        responsible_officer="officer",
        start_date=fitted_at.date(),
        end_date=fitted_at.date() + dt.timedelta(days=120),
    )
    session.add_all([home, order])
    session.flush()
    ring = wgs84(ZONE_BNG)
    curfew = Condition(
        order_id=order.id,
        type="curfew",
        start=fitted_at - dt.timedelta(days=1),
        end=None,
        address_id=home.id,
        timetable=timetable if timetable is not None else EVENINGS,
    )
    zone = Condition(
        order_id=order.id,
        type="exclusion_zone",
        start=fitted_at - dt.timedelta(days=1),
        end=None,
        name="Test zone",
        geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    )
    device = Device(serial=serial, type=device_type, model="T1", batch="B1")
    session.add_all([curfew, zone, device])
    session.flush()
    allocation = Allocation(
        device_id=device.id,
        order_id=order.id,
        person_id=person.id,
        fitted_at=fitted_at,
        removed_at=removed_at,
        # Recorded when fitted unless said otherwise, so the silence after fitting counts.
        recorded_at=recorded_at or fitted_at,
    )
    session.add(allocation)
    session.flush()
    return Case(person.id, order.id, allocation.id, curfew.id, zone.id, serial)


def feed(session: Session, records: Sequence[dict[str, Any]], received_at: dt.datetime) -> None:
    """Send records through the ingestion pipeline (which publishes TelemetryStored)."""
    settings = Settings(environment="test")
    result = ingest(
        session,
        items_from_body(orjson.dumps(list(records))),
        channel="http",
        origin="test",
        settings=settings,
        received_at=received_at,
    )
    assert result.rejected == 0, result.as_dict()


def gps(serial: str, t: dt.datetime, x: float, y: float, accuracy: float = 5.0) -> dict[str, Any]:
    [[lon, lat]] = wgs84([(x, y)])
    return {
        "device": serial,
        "type": "gps",
        "time": t.isoformat(),
        "lat": lat,
        "lon": lon,
        "accuracy_m": accuracy,
        "source": "gnss",
    }


def status(serial: str, t: dt.datetime, **fields: Any) -> dict[str, Any]:
    return {"device": serial, "type": "status", "time": t.isoformat(), **fields}


def record_keys(session: Session) -> dict[tuple[str, int], str]:
    """Stored record id -> dedupe key, to compare evidence across separate stores."""
    keys = {("fix", i): k for i, k in session.execute(select(GpsFix.id, GpsFix.dedupe_key))}
    keys.update(
        {
            ("event", i): k
            for i, k in session.execute(select(DeviceEvent.id, DeviceEvent.dedupe_key))
        }
    )
    return keys
