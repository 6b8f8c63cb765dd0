"""A small tagged cohort and one day of its devices' records, stored through the real
ingestion pipeline (so compliance finds violations and raises alerts as it would live).

The day is DAY (UTC). What each wearer does is chosen so the exports and views have known
shapes: A walks into an exclusion zone (a circle) at midday; B stays clear of theirs (a
polygon), sends one impossible fix and opens their strap; C's fixes break into two tracks and
a lone fix. A spare device, on nobody, sends a few fixes; A's device also sends one fix just
before and one just after the day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.cases.models import Address, Condition, PersonName
from tagwatch.geo.projection import to_wgs84
from tagwatch.settings import Settings
from tagwatch.telemetry.service import ingest
from tagwatch.telemetry.sources import items_from_body

DAY = dt.date(2026, 11, 22)
START = dt.datetime.combine(DAY, dt.time(), dt.UTC)
STEP = dt.timedelta(minutes=5)
SPARE_SERIAL = "GPS-ANA-SPARE"
ZONE_CENTRE_BNG = (532_000.0, 180_000.0)
ZONE_RADIUS_M = 200.0
ZONE_SQUARE_BNG = [(520_000, 170_000), (520_500, 170_000), (520_500, 170_500), (520_000, 170_500)]


@dataclass
class Wearer:
    key: str
    ref: str
    crn: str
    pnc: str
    serial: str
    order_ref: str
    given: str
    family: str
    street: str
    postcode: str
    allocation_id: int = 0
    person_id: int = 0


@dataclass
class Cohort:
    wearers: dict[str, Wearer] = field(default_factory=dict)

    def identifying_strings(self) -> list[str]:
        """Everything that names or identifies a wearer; none may reach an analyst."""
        found = [SPARE_SERIAL, "Hackney Road safe house"]
        for w in self.wearers.values():
            found += [w.ref, w.crn, w.pnc, w.serial, w.order_ref, w.given, w.family, w.street,
                      w.postcode]  # fmt: skip
        return found


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = to_wgs84([x], [y])
    return round(float(lon[0]), 8), round(float(lat[0]), 8)


def build_cohort(session: Session, settings: Settings) -> Cohort:
    """The three wearers on their orders, their zones, and the day's records ingested."""
    cohort = Cohort()
    for n, key in enumerate("ABC", start=1):
        wearer = Wearer(
            key=key,
            ref=f"TWANA{n:04d}",
            crn=f"Q{n:06d}",
            pnc=f"2026/{n:07d}Z",
            serial=f"GPS-ANA-{n}",
            order_ref=f"ORD-ANA-{n}",
            given=f"Zebedee{key}",
            family=f"Quillfeather{key}",
            street=f"{n} Marigold Crescent",
            postcode=f"N16 {n}QQ",
        )
        allocation = allocate(
            session,
            person_ref=wearer.ref,
            order_ref=wearer.order_ref,
            serial=wearer.serial,
            fitted_at=START - dt.timedelta(days=30),
            number=n,
            person={"crn": wearer.crn, "pnc": wearer.pnc},
        )
        wearer.allocation_id, wearer.person_id = allocation.id, allocation.person_id
        lon, lat = lonlat(530_000, 180_000)
        session.add_all(
            [
                PersonName(
                    person_id=wearer.person_id,
                    kind="primary",
                    given=wearer.given,
                    family=wearer.family,
                    normalised=f"{wearer.given} {wearer.family}".lower(),
                    normalised_family=wearer.family.lower(),
                ),
                Address(
                    person_id=wearer.person_id,
                    ref="home",
                    line1=wearer.street,
                    town="London",
                    postcode=wearer.postcode,
                    lat=lat,
                    lon=lon,
                ),
            ]
        )
        cohort.wearers[key] = wearer
    _zones(session, cohort)
    session.flush()
    feed(session, settings, day_records(cohort))
    return cohort


def _zones(session: Session, cohort: Cohort) -> None:
    order_of = {w.key: _order_id(session, w) for w in cohort.wearers.values()}
    ring = [list(lonlat(x, y)) for x, y in [*ZONE_SQUARE_BNG, ZONE_SQUARE_BNG[0]]]
    session.add_all(
        [
            Condition(
                order_id=order_of["A"],
                type="exclusion_zone",
                start=START - dt.timedelta(days=30),
                name="Hackney Road safe house",
                geometry={
                    "type": "Circle",
                    "coordinates": list(lonlat(*ZONE_CENTRE_BNG)),
                    "radius_m": ZONE_RADIUS_M,
                },
            ),
            Condition(
                order_id=order_of["B"],
                type="exclusion_zone",
                start=START - dt.timedelta(days=30),
                name="Hackney Road safe house",
                geometry={"type": "Polygon", "coordinates": [ring]},
            ),
        ]
    )


def _order_id(session: Session, wearer: Wearer) -> int:
    from tagwatch.cases.models import Allocation

    allocation = session.get(Allocation, wearer.allocation_id)
    assert allocation is not None
    return allocation.order_id


def gps(serial: str, t: dt.datetime, x: float, y: float, **more: Any) -> dict[str, Any]:
    lon, lat = lonlat(x, y)
    return {"device": serial, "type": "gps", "time": t.isoformat(), "lat": lat, "lon": lon,
            "accuracy_m": 5.0, "source": "gnss", **more}  # fmt: skip


def event(serial: str, t: dt.datetime, kind: str, **fields: Any) -> dict[str, Any]:
    return {"device": serial, "type": kind, "time": t.isoformat(), **fields}


def day_records(cohort: Cohort) -> list[dict[str, Any]]:
    a, b, c = (cohort.wearers[k].serial for k in "ABC")
    slots = [START + i * STEP for i in range(288)]  # every five minutes of the day
    records: list[dict[str, Any]] = []
    for t in slots:
        at_zone = START + dt.timedelta(hours=12) <= t <= START + dt.timedelta(hours=12, minutes=30)
        records.append(gps(a, t, *(ZONE_CENTRE_BNG if at_zone else (530_000, 180_000))))
        records.append(gps(b, t, 528_000 + t.minute, 182_000, sats=9, hdop=0.8))
    records.append(gps(a, START - dt.timedelta(milliseconds=1), 530_000, 180_000))
    records.append(gps(a, START + dt.timedelta(days=1), 530_000, 180_000))
    records.append({**gps(b, START + dt.timedelta(hours=9, minutes=1), 0, 0), "lat": 0.0,
                    "lon": 0.0})  # fmt: skip
    records.append(event(b, START + dt.timedelta(hours=15), "status", strap="open"))
    for t in c_fix_times():
        records.append(gps(c, t, 531_000 + (t - START).total_seconds() / 60, 181_000))
    records += [
        event(c, START + dt.timedelta(hours=7), "rf", state="in_range", unit="HMU-ANA-3"),
        event(c, START + dt.timedelta(hours=8), "status", battery_pct=64, charging=False),
        event(c, START + dt.timedelta(hours=10), "checkin", result="success", method="face"),
    ]
    for minutes in (0, 3, 6):
        t = START + dt.timedelta(hours=20, minutes=minutes)
        records.append(gps(SPARE_SERIAL, t, 533_000, 183_000))
    return records


def c_fix_times() -> list[dt.datetime]:
    """C: 00:00-06:00 and 09:00-12:00 every five minutes, then one lone fix at 18:00."""
    morning = [START + i * STEP for i in range(73)]
    late = [START + dt.timedelta(hours=9) + i * STEP for i in range(37)]
    return [*morning, *late, START + dt.timedelta(hours=18)]


def feed(session: Session, settings: Settings, records: Sequence[dict[str, Any]]) -> None:
    result = ingest(
        session,
        items_from_body(orjson.dumps(list(records))),
        channel="http",
        origin="analytics-test",
        settings=settings,
        received_at=START + dt.timedelta(days=1, hours=1),
    )
    assert result.rejected == 0, result.as_dict()
