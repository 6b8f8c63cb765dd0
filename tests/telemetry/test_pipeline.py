"""The shared pipeline: counts, quarantine, idempotence, allocation, plausibility, read side."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from telemetry_records import NOW, T0, fix, status

from tagwatch.cases.events import AllocationRecorded
from tagwatch.cases.models import Allocation
from tagwatch.events import publish
from tagwatch.settings import Settings
from tagwatch.telemetry import repository
from tagwatch.telemetry.models import DeviceEvent, GpsFix, IngestBatch, QuarantinedRecord
from tagwatch.telemetry.service import IngestResult, ingest, replay_quarantined
from tagwatch.telemetry.sources import items_from_body, items_from_ndjson

PER_EXAMPLE = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def send(db: Session, app_settings: Settings, records: list[Any], **kw: Any) -> IngestResult:
    body = b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records)
    return ingest(
        db,
        list(items_from_ndjson(body.splitlines())),
        channel="file",
        origin="test",
        settings=app_settings,
        received_at=kw.get("received_at", NOW),
    )


def stored(db: Session) -> set[tuple[Any, ...]]:
    """Everything the store holds, by value (ids and receipt times aside)."""
    fixes = db.execute(
        select(
            GpsFix.dedupe_key,
            GpsFix.t_ms,
            GpsFix.lat,
            GpsFix.lon,
            GpsFix.allocation_id,
            GpsFix.implausible_reason,
        )
    ).all()
    events = db.execute(
        select(
            DeviceEvent.dedupe_key, DeviceEvent.t_ms, DeviceEvent.type, DeviceEvent.allocation_id
        )
    ).all()
    return {tuple(row) for row in fixes} | {("event", *row) for row in events}


def test_counts_rejections_and_quarantine(db: Session, settings: Settings) -> None:
    records = [
        fix("GPS-A", 0, seq=1),
        fix("GPS-A", 1, seq=2),
        {"device": "GPS-A", "type": "gps", "time": "2026-11-23T09:02:00Z"},
        b'{"device": "GPS-A", "type": ',
        fix("GPS-A", 1, seq=2),  # repeated in the same batch
        status("GPS-A", 1, battery_pct=150),
        status("GPS-A", 2, strap="open"),
    ]
    result = send(db, settings, records)
    assert result.counts() == {
        "received": 7,
        "accepted": 3,
        "duplicate": 1,
        "rejected": 3,
        "unallocated": 3,
        "implausible": 0,
    }
    by_line = {r.position: r for r in result.rejections}
    assert sorted(by_line) == [3, 4, 6]
    assert {e.field for e in by_line[3].errors} == {"lat", "lon", "accuracy_m", "source"}
    assert by_line[4].errors[0].field == "record"
    assert [(e.field, e.reason) for e in by_line[6].errors] == [
        ("battery_pct", "must be between 0 and 100")
    ]
    quarantined = db.get(QuarantinedRecord, by_line[6].quarantine_id)
    assert quarantined is not None and quarantined.position == 6
    assert orjson.loads(quarantined.raw_text)["battery_pct"] == 150
    assert quarantined.errors == [{"field": "battery_pct", "reason": "must be between 0 and 100"}]
    batch = db.get(IngestBatch, result.batch_ids[0])
    assert batch is not None and (batch.accepted, batch.rejected) == (3, 3)


def test_sending_twice_stores_nothing_twice(db: Session, settings: Settings) -> None:
    records = [fix("GPS-B", m, seq=m) for m in range(5)] + [status("GPS-B", 3)]
    first = send(db, settings, records)
    before = stored(db)
    again = send(db, settings, records)
    assert (first.accepted, first.duplicate) == (6, 0)
    assert (again.accepted, again.duplicate) == (0, 6)
    assert stored(db) == before


def test_sequence_numbers_are_one_key_space_across_types(db: Session, settings: Settings) -> None:
    first = send(db, settings, [fix("GPS-S", 0, seq=10)])
    second = send(db, settings, [{**status("GPS-S", 5), "seq": 10}])
    assert first.accepted == 1
    assert (second.accepted, second.duplicate) == (0, 1)


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Fixes and events of two devices, with repeats, jumps and out-of-order times. A record
    sent again is the same record (a retransmission), as the dedupe key assumes."""
    known: dict[tuple[Any, ...], dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 25))):
        device = draw(st.sampled_from(["GPS-P1", "GPS-P2"]))
        minute = draw(st.integers(0, 60))
        kind = draw(st.sampled_from(["gps", "gps", "gps", "gps+seq", "status"]))
        identity = (device, minute, kind)
        if identity not in known:
            if kind == "status":
                known[identity] = status(device, minute, battery_pct=draw(st.integers(0, 100)))
            else:
                far = draw(st.integers(0, 6)) == 0  # now and then a jump of some 50 km
                lat = 51.5 + (0.45 if far else draw(st.integers(0, 9)) * 0.001)
                seq = minute + 1000 if kind == "gps+seq" else None
                known[identity] = fix(device, minute, lat=lat, seq=seq)
        records.append(known[identity])
    return records


@PER_EXAMPLE
@given(records=batches(), data=st.data())
def test_any_split_and_order_stores_the_same(
    db: Session, settings: Settings, records: list[dict[str, Any]], data: st.DataObject
) -> None:
    """ingest(A + B) == ingest(B) then ingest(A), in any split and order, speed verdicts too."""
    nested = db.begin_nested()
    send(db, settings, records)
    whole = stored(db)
    nested.rollback()

    nested = db.begin_nested()
    shuffled = data.draw(st.permutations(records))
    cut = data.draw(st.integers(0, len(records)))
    send(db, settings, shuffled[cut:])
    send(db, settings, shuffled[:cut])
    send(db, settings, data.draw(st.permutations(records))[: data.draw(st.integers(0, 3))])
    assert stored(db) == whole
    keys = [row[1] if row[0] == "event" else row[0] for row in whole]
    assert len(keys) == len(set(keys))  # nothing stored twice
    nested.rollback()


def test_a_late_fix_is_judged_against_its_neighbours(db: Session, settings: Settings) -> None:
    far = 52.0  # about 55 km north: not reachable in a minute
    send(db, settings, [fix("GPS-L", 0, seq=0), fix("GPS-L", 2, seq=2), fix("GPS-L", 3, seq=3)])
    assert _verdicts(db, "GPS-L") == {"GPS-L|0": None, "GPS-L|2": None, "GPS-L|3": None}

    # A glitch arriving late, between two plausible fixes: it alone is implausible.
    result = send(db, settings, [fix("GPS-L", 1, seq=1, lat=far)])
    assert result.implausible == 1
    verdicts = _verdicts(db, "GPS-L")
    assert verdicts["GPS-L|1"] is not None and verdicts["GPS-L|1"].startswith("speed:")
    assert [verdicts[k] for k in ("GPS-L|0", "GPS-L|2", "GPS-L|3")] == [None, None, None]


def test_a_late_first_fix_re_judges_the_fix_it_makes_implausible(
    db: Session, settings: Settings
) -> None:
    send(db, settings, [fix("GPS-M", 5, seq=5, lat=52.0), fix("GPS-M", 6, seq=6, lat=52.0)])
    assert set(_verdicts(db, "GPS-M").values()) == {None}
    # An earlier fix far away: the chain now starts there, and both later fixes are too fast.
    send(db, settings, [fix("GPS-M", 4, seq=4, lat=51.5)])
    verdicts = _verdicts(db, "GPS-M")
    assert verdicts["GPS-M|4"] is None
    assert verdicts["GPS-M|5"] and verdicts["GPS-M|6"]
    # Then a fix that bridges the gap plausibly does not help: 52.0 is still 55 km away.
    send(db, settings, [fix("GPS-M", 600, seq=600, lat=52.0)])
    assert _verdicts(db, "GPS-M")["GPS-M|600"] is None


def test_static_implausibility(db: Session, settings: Settings) -> None:
    result = send(
        db,
        settings,
        [
            fix("GPS-I", 0, lat=0.0, lon=0.0),
            fix("GPS-I", 1, lat=95.0),
            fix("GPS-I", 2),
            # Observed an hour after it was received: the device clock is wrong.
            fix("GPS-I", 2, seq=1, time=(NOW + dt.timedelta(hours=1)).isoformat()),
        ],
    )
    assert (result.accepted, result.implausible) == (4, 3)
    reasons = sorted(r for r in _verdicts(db, "GPS-I").values() if r)
    assert [r.split(":")[0] for r in reasons] == ["future", "impossible coordinates"] * 1 + [
        "impossible coordinates"
    ]


def test_allocated_and_unallocated_records(
    db: Session, settings: Settings, make_allocation: Callable[..., Allocation]
) -> None:
    allocation = make_allocation("GPS-AL", fitted_at=T0, removed_at=T0 + dt.timedelta(minutes=30))
    result = send(
        db,
        settings,
        [fix("GPS-AL", -5), fix("GPS-AL", 5), status("GPS-AL", 6), fix("GPS-AL", 45)],
    )
    assert (result.accepted, result.unallocated) == (4, 2)
    table = repository.load_fixes(db, start=T0 - dt.timedelta(hours=1), end=NOW)
    assert list(table.allocation_id) == [allocation.id]
    summary = {s.device_serial: s for s in repository.unallocated_summary(db)}
    assert summary["GPS-AL"].records == 2


def test_records_sent_before_the_allocation_is_recorded_are_attached_later(
    db: Session, settings: Settings, make_allocation: Callable[..., Allocation]
) -> None:
    result = send(
        db, settings, [fix("GPS-LATE", m) for m in (0, 10, 20)] + [status("GPS-LATE", 15)]
    )
    assert result.unallocated == 4
    assert "GPS-LATE" in {s.device_serial for s in repository.unallocated_summary(db)}

    allocation = make_allocation(
        "GPS-LATE", fitted_at=T0 + dt.timedelta(minutes=5), removed_at=T0 + dt.timedelta(hours=1)
    )
    publish(
        db,
        AllocationRecorded(
            allocation_id=allocation.id,
            order_id=allocation.order_id,
            device_serial="GPS-LATE",
            fitted_at=allocation.fitted_at,
            removed_at=allocation.removed_at,
        ),
    )
    table = repository.load_fixes(
        db, start=T0 - dt.timedelta(hours=1), end=NOW, allocation_ids=[allocation.id]
    )
    assert len(table) == 2  # the fix at minute 0 is before the fitting
    events = repository.load_events(
        db, allocation_id=allocation.id, start=T0, end=NOW, types={"status"}
    )
    assert [e.fields for e in events] == [{"battery_pct": 80}]
    remaining = {s.device_serial: s for s in repository.unallocated_summary(db)}
    assert remaining["GPS-LATE"].records == 1


def test_the_read_interface(
    db: Session, settings: Settings, make_allocation: Callable[..., Allocation]
) -> None:
    first = make_allocation("GPS-R1")
    second = make_allocation("GPS-R2")
    send(
        db,
        settings,
        [
            fix("GPS-R2", 3),
            fix("GPS-R1", 2),
            fix("GPS-R1", 1),
            fix("GPS-R1", 4, lat=0.0, lon=0.0),  # implausible: left out
            status("GPS-R1", 9, strap="open"),
            status("GPS-R1", 8, battery_pct=5),
        ],
    )
    table = repository.load_fixes(db, start=T0, end=T0 + dt.timedelta(minutes=3))
    mine = table.allocation_id >= min(first.id, second.id)
    assert list(table.allocation_id[mine]) == [first.id, first.id, second.id]
    assert list(table.t_ms[mine] - table.t_ms[mine][0]) == [0, 60_000, 120_000]
    assert table.lat.dtype.name == "float64" and table.record_id.dtype.name == "int64"
    narrow = repository.load_fixes(
        db, start=T0, end=T0 + dt.timedelta(minutes=1), allocation_ids=[first.id]
    )
    assert len(narrow) == 1

    events = repository.load_events(db, allocation_id=first.id, start=T0, end=NOW)
    assert [(e.type, e.fields) for e in events] == [
        ("status", {"battery_pct": 5}),
        ("status", {"strap": "open"}),
    ]
    assert events[0].t == T0 + dt.timedelta(minutes=8) and events[0].received == NOW

    times = repository.last_record_times(db, [first.id, second.id, 10**9])
    assert times[first.id] == (T0 + dt.timedelta(minutes=9), T0 + dt.timedelta(minutes=2))
    assert times[second.id] == (T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=3))
    assert times[10**9] == (None, None)


def test_replay_releases_fixed_records_and_keeps_the_rest(db: Session, settings: Settings) -> None:
    result = send(
        db,
        settings,
        [status("GPS-Q", 1, battery_pct=101), status("GPS-Q", 2, strap="snapped")],
    )
    first, second = (r.quarantine_id for r in result.rejections)
    fixed = orjson.dumps(status("GPS-Q", 1, battery_pct=100)).decode()
    replay = replay_quarantined(
        db, ids=None, settings=settings, received_at=NOW, corrections={first: fixed}
    )
    assert replay.released == [first]
    assert list(replay.still_rejected) == [second]
    assert replay.ingest.accepted == 1
    released = db.get(QuarantinedRecord, first)
    kept = db.get(QuarantinedRecord, second)
    assert released is not None and released.status == "released"
    assert released.corrected_text == fixed and released.released_key == "GPS-Q|status|" + str(
        int((T0 + dt.timedelta(minutes=1)).timestamp() * 1000)
    )
    assert kept is not None and kept.status == "quarantined" and kept.replay_count == 1
    # Replaying again finds nothing new to release.
    again = replay_quarantined(db, ids=[first, second], settings=settings, received_at=NOW)
    assert again.released == [] and list(again.still_rejected) == [second]


def test_json_array_bodies_number_records_by_index(db: Session, settings: Settings) -> None:
    body = orjson.dumps([fix("GPS-J", 0), {"device": "GPS-J"}, fix("GPS-J", 1)])
    result = ingest(
        db, items_from_body(body), channel="http", origin="t", settings=settings, received_at=NOW
    )
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.rejections[0].position == 1
    broken = ingest(
        db, items_from_body(b"[{"), channel="http", origin="t", settings=settings, received_at=NOW
    )
    assert broken.rejected == 1 and broken.rejections[0].errors[0].field == "body"


def _verdicts(db: Session, device: str) -> dict[str, str | None]:
    rows = db.execute(
        select(GpsFix.dedupe_key, GpsFix.implausible_reason).where(GpsFix.device_serial == device)
    )
    return {key: reason for key, reason in rows}


def test_a_pretty_printed_single_record_is_one_record(db: Session, settings: Settings) -> None:
    body = orjson.dumps(fix("GPS-PP", 0), option=orjson.OPT_INDENT_2)
    assert body.count(b"\n") > 3
    result = ingest(
        db, items_from_body(body), channel="http", origin="t", settings=settings, received_at=NOW
    )
    assert (result.received, result.accepted) == (1, 1)
