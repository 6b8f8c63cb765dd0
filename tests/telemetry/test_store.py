"""The columnar write path: allocation look-up, speed verdicts and touched windows, each
checked against a plain one-record-at-a-time reference."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from telemetry_records import NOW, T0_MS, fix, status
from test_pipeline import send

from tagwatch.settings import Settings
from tagwatch.telemetry import repository
from tagwatch.telemetry.allocations import NONE, AllocationIndex
from tagwatch.telemetry.models import DeviceEvent, GpsFix
from tagwatch.telemetry.plausibility import TrackPoint, judge_chain
from tagwatch.telemetry.service import ingest
from tagwatch.telemetry.sources import items_from_body
from tagwatch.telemetry.store import Windows

PER_EXAMPLE = hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def spans(draw: st.DrawFn) -> list[tuple[str, int, int, int | None]]:
    """Allocation spans of a few devices: back to back, with gaps, some still open."""
    found = []
    allocation_id = itertools.count(1)
    for serial in draw(st.lists(st.sampled_from(["A", "B", "C"]), unique=True)):
        t = draw(st.integers(-50, 50))
        for _ in range(draw(st.integers(1, 4))):
            t += draw(st.integers(0, 40))
            length = draw(st.one_of(st.none(), st.integers(1, 60)))
            found.append((serial, next(allocation_id), t, None if length is None else t + length))
            if length is None:
                break
            t += length
    return found


@given(
    spans(),
    st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.integers(-100, 400))),
)
def test_find_many_agrees_with_find(
    found: list[tuple[str, int, int, int | None]], records: list[tuple[str, int]]
) -> None:
    index = AllocationIndex(found)
    serials = [serial for serial, _ in records]
    times = np.array([t for _, t in records], dtype=np.int64)
    expected = [index.find(serial, t) for serial, t in records]
    assert index.find_many(serials, times).tolist() == [NONE if a is None else a for a in expected]


@given(st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 10**6)), max_size=40))
def test_windows_span_each_allocations_records(pairs: list[tuple[int, int]]) -> None:
    windows = Windows()
    half = len(pairs) // 2
    for part in (pairs[:half], pairs[half:]):
        windows.add(
            np.array([a for a, _ in part], dtype=np.int64),
            np.array([t for _, t in part], dtype=np.int64),
        )
    expected: dict[int, tuple[int, int]] = {}
    for allocation_id, t in pairs:
        if allocation_id != NONE:
            low, high = expected.get(allocation_id, (t, t))
            expected[allocation_id] = (min(low, t), max(high, t))
    assert windows.spans == expected


@st.composite
def tracks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Fixes of two devices, some at the same millisecond, some far away (a glitch), some
    at impossible coordinates; each a distinct record."""
    records = []
    for n in range(draw(st.integers(1, 30))):
        device = draw(st.sampled_from(["GPS-V1", "GPS-V2"]))
        minute = draw(st.integers(0, 40)) / 2
        place = draw(st.sampled_from(["near", "near", "near", "far", "nowhere"]))
        lat = {"near": 51.5 + draw(st.integers(0, 9)) * 0.001, "far": 51.95, "nowhere": 0.0}
        lon = 0.0 if place == "nowhere" else -0.12
        records.append(fix(device, minute, lat=lat[place], lon=lon, seq=n))
    return records


def reference_verdicts(
    records: list[dict[str, Any]],
    stored: dict[str, tuple[int, float, float, str | None]],
    max_speed_mps: float,
) -> dict[str, str | None]:
    """Every device's chain judged in one go, one fix at a time (`judge_chain`)."""
    verdicts: dict[str, str | None] = {}
    by_device: dict[str, list[TrackPoint]] = {}
    for record in records:
        key = f"{record['device']}|{record['seq']}"
        t_ms, lat, lon, reason = stored[key]
        if reason is not None and not reason.startswith("speed:"):
            verdicts[key] = reason  # static: outside the chain
            continue
        by_device.setdefault(record["device"], []).append(TrackPoint(t_ms, key, lat, lon))
    for points in by_device.values():
        points.sort()
        judged, _last = judge_chain(None, points, max_speed_mps)
        verdicts.update({p.key: v for p, v in zip(points, judged, strict=True)})
    return verdicts


@PER_EXAMPLE
@given(records=tracks(), data=st.data())
def test_speed_verdicts_match_the_one_at_a_time_chain(
    db: Session, settings: Settings, records: list[dict[str, Any]], data: st.DataObject
) -> None:
    """However the fixes are batched and ordered, each verdict is the chain's."""
    nested = db.begin_nested()
    order = data.draw(st.permutations(records))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=3)))
    for low, high in itertools.pairwise([0, *cuts, len(records)]):
        if high > low:
            send(db, settings, order[low:high])
    rows = db.execute(
        select(GpsFix.dedupe_key, GpsFix.t_ms, GpsFix.lat, GpsFix.lon, GpsFix.implausible_reason)
    ).all()
    stored = {key: (t_ms, lat, lon, reason) for key, t_ms, lat, lon, reason in rows}
    expected = reference_verdicts(records, stored, settings.max_speed_mps)
    assert {key: value[3] for key, value in stored.items()} == expected
    nested.rollback()


def test_per_allocation_reads_answer_each_allocation_across_many_queries(
    db: Session, settings: Settings, make_allocation: Any
) -> None:
    """Each allocation's own window, for more allocations than one query takes."""
    first = make_allocation("GPS-W1")
    second = make_allocation("GPS-W2")
    send(db, settings, [fix("GPS-W1", m) for m in range(10)] + [fix("GPS-W2", m) for m in (3, 4)])
    rf = {**status("GPS-W1", 1.5), "type": "rf", "state": "in_range", "unit": "HMU-W1"}
    del rf["battery_pct"]
    send(
        db,
        settings,
        [status("GPS-W1", 5.5), fix("GPS-W1", 7.5, lat=0.0, lon=0.0, seq=99), rf],
    )
    rf_id = db.scalar(select(DeviceEvent.id).where(DeviceEvent.type == "rf"))
    minute = 60_000
    absent = range(10**9, 10**9 + 900)  # allocations with no records at all
    starts = {first.id: T0_MS + 4 * minute, second.id: T0_MS, **dict.fromkeys(absent, 0)}
    table = repository.load_fixes_from(db, starts, T0_MS + 8 * minute)
    assert list(zip(table.allocation_id.tolist(), table.t_ms.tolist(), strict=True)) == [
        (first.id, T0_MS + m * minute) for m in range(4, 9)
    ] + [(second.id, T0_MS + m * minute) for m in (3, 4)]
    battery = repository.PayloadField("status", "battery_pct")
    events = repository.load_events_from(db, starts, T0_MS + 8 * minute, ["status"], [battery])
    assert events.allocation_id.tolist() == [first.id]
    assert (events.type.tolist(), events.fields["battery_pct"].tolist()) == ([0], [80.0])
    assert repository.first_record_ms(db, [first.id, second.id, *absent]) == {
        first.id: T0_MS,
        second.id: T0_MS + 3 * minute,
    }
    before = repository.records_before(db, {**starts, first.id: T0_MS + 8 * minute}, rf=True)
    assert len(before) == 902 and before[10**9] == repository.RecordsBefore(None, None, None)
    # The implausible fix at minute 7.5 is a record, but not an accepted fix.
    assert before[first.id] == repository.RecordsBefore(
        T0_MS + 7 * minute + minute // 2, T0_MS + 7 * minute, rf_id
    )


def test_a_batch_partly_stored_before_answers_for_its_new_records_only(
    db: Session, settings: Settings, make_allocation: Any
) -> None:
    """The records stored new are told apart from those stored before, wherever they sit in
    the batch: each new one's allocation and verdict, and only theirs, are in the answer."""
    make_allocation("GPS-P1")
    before = [fix("GPS-P1", m, seq=m) for m in range(0, 10, 2)]
    send(db, settings, before)
    new = [
        fix("GPS-P1", 1, seq=1),  # late, between stored fixes
        fix("GPS-P2", 3, seq=3, lat=0.0, lon=0.0),  # no allocation, impossible place
        {**status("GPS-P1", 5), "seq": 11},
        {**status("GPS-P1", 6), "seq": 4},  # a stored fix's sequence number: a duplicate
    ]
    mixed = [record for pair in itertools.zip_longest(before, new) for record in pair if record]
    result = ingest(
        db,
        items_from_body(b"\n".join(orjson.dumps(r) for r in mixed)),
        channel="http",
        origin="test",
        settings=settings,
        received_at=NOW,
        detail=True,
    )
    assert result.counts() == {
        "received": 9,
        "accepted": 3,
        "duplicate": 6,
        "rejected": 0,
        "unallocated": 1,
        "implausible": 1,
    }
    assert result.stored == {
        "GPS-P1|1": (False, False),
        "GPS-P2|3": (True, True),
        "GPS-P1|11": (False, False),
    }
