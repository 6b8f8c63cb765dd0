"""The file channel's reader process: a file stored through it is stored exactly as the same
records sent in one batch, and its failures reach the caller."""

from __future__ import annotations

import gc
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from telemetry_records import T0_MS, fix, status

from tagwatch.settings import Settings
from tagwatch.telemetry.feed import format_time_ms
from tagwatch.telemetry.files import store_file
from tagwatch.telemetry.models import DeviceEvent, GpsFix, QuarantinedRecord
from tagwatch.telemetry.service import IngestResult

_examples = itertools.count(1)
DEVICES = ["@-A", "@-B"]  # "@" becomes a prefix of each run's own


@st.composite
def feeds(draw: st.DrawFn) -> list[Any]:
    """NDJSON lines of two devices: fixes (some far off, some at impossible coordinates, some
    at the same time as others), status records (some reusing a fix's sequence number),
    broken lines, blank lines and repeats."""
    lines: list[Any] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["fix", "fix", "fix", "status", "broken", "blank", "again"]))
        device = draw(st.sampled_from(DEVICES))
        seq = draw(st.one_of(st.none(), st.integers(0, 30)))
        minute = draw(st.integers(0, 60)) / 2
        if kind == "fix":
            lat = draw(st.sampled_from([51.5, 51.501, 51.502, 52.5, 0.0]))
            lines.append(fix(device, minute, lat=lat, lon=0.0 if lat == 0.0 else -0.12, seq=seq))
        elif kind == "status":
            record = status(device, minute, battery_pct=draw(st.integers(0, 120)))
            lines.append(record if seq is None else {**record, "seq": seq})
        elif kind == "broken":
            lines.append(draw(st.sampled_from([b'{"device": ', b"[1]", b'{"type": "gps"}'])))
        elif kind == "blank":
            lines.append(b"")
        elif lines:
            lines.append(draw(st.sampled_from(lines)))
    return lines


def ndjson(lines: list[Any], prefix: str = "") -> bytes:
    body = b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in lines) + b"\n"
    return body.replace(b"@-", prefix.encode())


def answer(result: IngestResult) -> dict[str, Any]:
    """The answer without quarantine ids (which differ between two runs)."""
    whole = result.as_dict()
    return whole | {
        "rejections": [
            {k: v for k, v in r.items() if k != "quarantine_id"} for r in whole["rejections"]
        ]
    }


def held(db: Session, prefix: str, origin: Path) -> tuple[set[Any], list[Any]]:
    """What the store holds for the devices named `prefix...` (with the prefix taken off;
    ids and receipts aside), and the lines quarantined from `origin`, in order."""
    fixes = db.execute(
        select(
            GpsFix.dedupe_key,
            GpsFix.t_ms,
            GpsFix.seq,
            GpsFix.lat,
            GpsFix.lon,
            GpsFix.allocation_id,
            GpsFix.implausible_reason,
        ).where(GpsFix.device_serial.startswith(prefix))
    ).all()
    events = db.execute(
        select(
            DeviceEvent.dedupe_key, DeviceEvent.t_ms, DeviceEvent.type, DeviceEvent.payload
        ).where(DeviceEvent.device_serial.startswith(prefix))
    ).all()
    quarantined = db.execute(
        select(QuarantinedRecord.position, QuarantinedRecord.raw_text, QuarantinedRecord.errors)
        .where(QuarantinedRecord.origin == str(origin))
        .order_by(QuarantinedRecord.id)
    ).all()
    stored = {(key.removeprefix(prefix), *rest) for key, *rest in fixes} | {
        ("event", key.removeprefix(prefix), t_ms, kind, orjson.dumps(payload))
        for key, t_ms, kind, payload in events
    }
    return stored, [(p, text.replace(prefix, "@-"), e) for p, text, e in quarantined]


@hypothesis_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=feeds(), chunk=st.integers(1, 12))
def test_a_file_through_the_reader_process_is_stored_as_in_one_process(
    db: Session,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[Any],
    chunk: int,
) -> None:
    n = next(_examples)
    runs: dict[bool, tuple[Any, ...]] = {}
    for reader_process in (False, True):
        prefix = f"R{n}{'p' if reader_process else 'i'}-"
        path = tmp_path_factory.mktemp("feed") / "feed.ndjson"
        path.write_bytes(ndjson(lines, prefix))
        first = store_file(db, path, settings=settings, chunk=chunk, reader_process=reader_process)
        again = store_file(db, path, settings=settings, chunk=chunk, reader_process=reader_process)
        runs[reader_process] = (answer(first), answer(again), held(db, prefix, path))
    assert runs[True] == runs[False]
    first_answer, again_answer, _held = runs[True]
    assert again_answer["accepted"] == 0
    assert again_answer["duplicate"] == first_answer["accepted"] + first_answer["duplicate"]


def test_a_reader_failure_reaches_the_caller_after_the_chunks_before_it(
    db: Session, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    # Text is decoded a block at a time: the bad bytes come well after the first blocks.
    good = "".join(
        f"GPS-RF1,{format_time_ms(T0_MS + m * 1000)},51.5,-0.12,4,{m}\n" for m in range(2000)
    )
    path.write_bytes(b"device,time,lat,lon,accuracy_m,seq\n" + good.encode() + b"\xff\xfe\n")
    seen: list[int] = []
    with pytest.raises(UnicodeDecodeError):
        store_file(
            db,
            path,
            settings=settings,
            chunk=500,
            reader_process=True,
            on_chunk=lambda total, _consumed: seen.append(total.accepted),
        )
    assert seen and seen[-1] >= 500
    stored = db.scalars(select(GpsFix.seq).where(GpsFix.device_serial == "GPS-RF1")).all()
    assert sorted(seq or 0 for seq in stored) == list(range(seen[-1]))


def test_a_store_failure_stops_the_reader(db: Session, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(ndjson([fix("GPS-RF2", m, seq=m) for m in range(50)]))

    def fail(_total: IngestResult, _consumed: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store_file(db, path, settings=settings, chunk=5, reader_process=True, on_chunk=fail)
    stored = db.scalars(select(GpsFix.seq).where(GpsFix.device_serial == "GPS-RF2")).all()
    assert sorted(seq or 0 for seq in stored) == list(range(5))


def test_storing_a_file_leaves_the_collector_as_it_found_it(
    db: Session, settings: Settings, tmp_path: Path
) -> None:
    """The heap is frozen while a file is stored, and thawed after unless it was frozen
    before."""
    path = tmp_path / "feed.ndjson"
    path.write_bytes(ndjson([fix("GPS-GC1", m, seq=m) for m in range(3)]))
    long_lived: list[object] = []
    gc.unfreeze()
    store_file(db, path, settings=settings)
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        store_file(db, path, settings=settings)
        # Still frozen: not among the objects the collector walks.
        assert all(tracked is not long_lived for tracked in gc.get_objects())
    finally:
        gc.unfreeze()  # the tests after this one run with the collector as usual
