"""Crime fixtures: people wearing tags, with fixes stored as telemetry stores them."""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from crime_scene import T0, gps_fixes
from sqlalchemy.orm import Session

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


# --- the browser harness of tests/web (live server, Chromium, axe), on a schema of its own -----


def _browser_harness() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "web" / "conftest.py"
    spec = importlib.util.spec_from_file_location("crime_browser_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    # A PostgreSQL run gives the crime journey its own schema, apart from the portal's.
    module.BROWSER_SCHEMA = "tw_crime_browser"
    return module


_harness = _browser_harness()
server_engine = _harness.server_engine
server_sessions = _harness.server_sessions
server_settings = _harness.server_settings
live_server = _harness.live_server
page = _harness.page
sign_in = _harness.sign_in
assert_accessible = _harness.assert_accessible


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium for this directory's journeys, closed when their module ends.

    Only one sync Playwright may run in a thread at a time, so this one must be gone before
    tests/web starts its own for the rest of the session (pytest runs tests/crime first).
    """
    if not _harness.CHROMIUM.exists():
        pytest.skip(f"{_harness.CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(_harness.CHROMIUM), args=_harness.CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
