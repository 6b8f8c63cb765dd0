"""Crime fixtures: people wearing tags, with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from crime_scene import T0, gps_fixes
from sqlalchemy.orm import Session

import browser_harness
from case_builders import allocate
from tagwatch.cases.models import Allocation, Device

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
        rows = gps_fixes(serial, allocation.id, points, accuracy)
        db.add_all(rows)
        db.flush()
        return [r.id for r in rows]

    return build


# --- the browser harness of tests/web, on a server and schema of its own ----------------------

_harness = browser_harness.install(globals(), "tw_crime_browser")
