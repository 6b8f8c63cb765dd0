"""The live map: latest positions at once, then new ones pushed by server-sent events."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from tagwatch.db.engine import unit_of_work
from tagwatch.telemetry.service import ingest
from tagwatch.telemetry.sources import items_from_body


def test_live_map_shows_positions_and_updates_within_seconds(
    page: Any,
    sign_in: Any,
    seeded: Any,
    assert_accessible: Any,
    server_sessions: Any,
    server_settings: Any,
) -> None:
    sign_in(page, "officer1", "officer1-test-password")
    page.goto("/live")
    live = page.locator("#live-map[data-ready=true]")
    live.wait_for()
    assert "Seán O'Neil-Smith" in page.locator("table").inner_text()
    assert_accessible(page)
    deadline = time.monotonic() + 10
    while (live.get_attribute("data-updates") or "0") == "0":
        assert time.monotonic() < deadline, "no server-sent event arrived"
        page.wait_for_timeout(100)
    before = int(live.get_attribute("data-updates"))
    cell = page.locator(f"[data-live-seen='{seeded.person_id}']")
    seen_before = cell.inner_text()

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fix = {
        "device": "GPS-0001",
        "type": "gps",
        "time": now.isoformat().replace("+00:00", "Z"),
        "lat": 51.5401,
        "lon": -0.1031,
        "accuracy_m": 5.0,
        "source": "gnss",
        "seq": 900_000,
    }
    with unit_of_work(server_sessions) as session:
        ingest(
            session,
            items_from_body(json.dumps(fix).encode()),
            channel="http",
            origin="test",
            settings=server_settings,
            received_at=now,
        )
    deadline = time.monotonic() + 10
    while cell.inner_text() == seen_before:
        assert time.monotonic() < deadline, "the new position was not pushed"
        page.wait_for_timeout(100)
    assert int(live.get_attribute("data-updates")) > before
    assert "Updated" in page.locator("#live-status").inner_text()
