"""Telemetry fixtures: a case with an allocated device."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session
from telemetry_records import T0

from case_builders import allocate
from tagwatch.cases.models import Allocation

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
        allocation = allocate(
            db,
            person_ref=f"TW-TELE-{n}",
            order_ref=f"ORD-TELE-{n}",
            serial=serial,
            fitted_at=fitted_at,
            removed_at=removed_at,
            number=n,
        )
        return allocation

    return build
