"""Crime fixtures: people wearing tags, with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from crime_scene import SCENE, T0
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.cases.models import Allocation, Device
from tagwatch.geo.projection import to_wgs84
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

_numbers = itertools.count(1)


@pytest.fixture
def make_wearer(db: Session) -> Callable[..., Allocation]:
    """A person with an order and a GPS tag allocated from the day before T0."""

    def build(ref: str | None = None) -> Allocation:
        n = next(_numbers)
        return allocate(
            db,
            person_ref=ref or f"TW-CRIME-{n}",
            order_ref=f"ORD-CRIME-{n}",
            serial=f"GPS-CRIME-{n}",
            fitted_at=T0 - dt.timedelta(days=1),
            number=n,
        )

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
