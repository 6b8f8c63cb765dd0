"""Preparing a batch: its records sorted into rejected ones and, per table, the first of each
dedupe key as columns, checked against a plain record-by-record reference; and the staging
image carries exactly the staged rows."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from telemetry_records import fix, status

from tagwatch.telemetry.columns import EVENT_STAGING, FIX_STAGING, Item, prepare
from tagwatch.telemetry.feed import Fix, parse_object


@st.composite
def batches(draw: st.DrawFn) -> list[Item]:
    """Items of two devices with few sequence numbers and times, so keys collide within and
    across the tables; some rejected."""
    items = []
    for position in range(draw(st.integers(0, 30))):
        device = draw(st.sampled_from(["GPS-C1", "GPS-C2"]))
        seq = draw(st.one_of(st.none(), st.integers(0, 4)))
        minute = draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["fix", "status", "bad"]))
        record: dict[str, Any]
        if kind == "fix":
            record = fix(device, minute, lat=draw(st.sampled_from([51.5, 51.6])), seq=seq)
        elif kind == "status":
            record = status(device, minute, battery_pct=draw(st.integers(0, 100)))
            if seq is not None:
                record["seq"] = seq
        else:
            record = {"device": device, "type": "status", "time": "soon"}
        items.append(Item(position, b"raw", parse_object(record)))
    return items


def reference(items: list[Item]) -> tuple[list[int], dict[str, Any], dict[str, Any]]:
    """Record by record: the first record of each key counts, in whichever table."""
    rejected: list[int] = []
    fixes: dict[str, Any] = {}
    events: dict[str, Any] = {}
    taken: set[str] = set()
    for item in items:
        parsed = item.parsed
        if isinstance(parsed, list):
            rejected.append(item.position)
        elif parsed.dedupe_key not in taken:
            taken.add(parsed.dedupe_key)
            (fixes if isinstance(parsed, Fix) else events)[parsed.dedupe_key] = parsed
    return rejected, fixes, events


@given(batches(), st.booleans())
def test_prepare_keeps_the_first_of_each_key_as_columns(items: list[Item], image: bool) -> None:
    prepared = prepare(items, image=image)
    rejected, fixes, events = reference(items)
    assert prepared.received == len(items)
    assert [item.position for item in prepared.rejected] == rejected
    for records, expected in ((prepared.fixes, fixes), (prepared.events, events)):
        assert records.keys == list(expected)
        assert [records.serials[code] for code in records.device.tolist()] == [
            r.device for r in expected.values()
        ]
        assert records.t_ms.tolist() == [r.t_ms for r in expected.values()]
    assert prepared.fixes.lat.tolist() == [f.lat for f in fixes.values()]
    assert prepared.fixes.lon.tolist() == [f.lon for f in fixes.values()]

    staged = (
        staged_rows(prepared.image)
        if image
        else {
            "gps_fix": prepared.fixes.rows,
            "device_event": prepared.events.rows,
        }
    )
    assert [row[:4] for row in staged["gps_fix"] or []] == [
        (pos, key, f.device, f.t_ms) for pos, (key, f) in enumerate(fixes.items())
    ]
    assert [row[:5] for row in staged["device_event"] or []] == [
        (pos, key, e.device, e.type, e.t_ms) for pos, (key, e) in enumerate(events.items())
    ]


def staged_rows(image: bytes | None) -> dict[str, list[tuple[Any, ...]]]:
    assert image is not None
    database = sqlite3.connect(":memory:")
    database.deserialize(image)
    try:
        return {
            table: database.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY pos"
            ).fetchall()
            for table, columns in (("gps_fix", FIX_STAGING), ("device_event", EVENT_STAGING))
        }
    finally:
        database.close()
