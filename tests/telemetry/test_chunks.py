"""A file is stored chunk by chunk: duplicates across chunks, and every rejection's line,
field and reason, come out as if the file were one batch, and as the HTTP channel says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from telemetry_records import NOW, fix, status

from tagwatch.settings import Settings
from tagwatch.telemetry.files import store_file
from tagwatch.telemetry.models import DeviceEvent, GpsFix, QuarantinedRecord
from tagwatch.telemetry.service import IngestResult, ingest
from tagwatch.telemetry.sources import items_from_body

RECORDS: list[Any] = [
    fix("GPS-K", 0, seq=1),
    fix("GPS-K", 1, seq=2),
    {"device": "GPS-K", "type": "gps", "time": "2026-11-23T09:02:00Z", "lat": "north"},
    status("GPS-K", 2, battery_pct=50, seq=3),
    fix("GPS-K", 0, seq=1),  # a retransmission, two chunks after the original
    {**status("GPS-K", 4), "seq": 2},  # the sequence number of a fix: the same record
    b'{"device": "GPS-K", "type": "status", "time": ',
    status("GPS-K", 5, battery_pct=101),
    fix("GPS-K", 6),
    fix("GPS-K", 6),  # repeated within the last chunk
]


def body() -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in RECORDS) + b"\n"


def answer(result: IngestResult) -> dict[str, Any]:
    return result.as_dict() | {
        "rejections": [
            {k: v for k, v in r.items() if k != "quarantine_id"}
            for r in result.as_dict()["rejections"]
        ]
    }


def stored_rows(db: Session) -> tuple[int, int, int]:
    return (
        db.scalar(select(func.count()).select_from(GpsFix)) or 0,
        db.scalar(select(func.count()).select_from(DeviceEvent)) or 0,
        db.scalar(select(func.count()).select_from(QuarantinedRecord)) or 0,
    )


@pytest.mark.parametrize(
    ("chunk", "piece", "reader_process"),
    [
        (1, 1, False),
        (2, 2, False),
        (3, 3, False),
        (100, 100, False),
        (3, 3, True),
        (5, 2, False),
        (4, 3, True),
    ],
)
def test_chunks_answer_as_one_batch_and_as_http(
    db: Session, settings: Settings, tmp_path: Path, chunk: int, piece: int, reader_process: bool
) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(body())
    nested = db.begin_nested()
    whole = ingest(
        db, items_from_body(body()), channel="http", origin="t", settings=settings, received_at=NOW
    )
    whole_rows = stored_rows(db)
    nested.rollback()

    chunked = store_file(
        db, path, settings=settings, chunk=chunk, piece=piece, reader_process=reader_process
    )
    assert answer(chunked) == answer(whole)
    assert chunked.counts() == {
        "received": 10,
        "accepted": 4,
        "duplicate": 3,
        "rejected": 3,
        "unallocated": 4,
        "implausible": 0,
    }
    assert [(r.position, [(e.field, e.reason) for e in r.errors]) for r in chunked.rejections] == [
        (
            3,
            [("lat", "must be a number")]
            + [(f, "is required for a gps record") for f in ("lon", "accuracy_m", "source")],
        ),
        (7, [("record", chunked.rejections[1].errors[0].reason)]),
        (8, [("battery_pct", "must be between 0 and 100")]),
    ]
    assert chunked.rejections[1].errors[0].reason.startswith("is not valid JSON")
    assert stored_rows(db) == whole_rows == (3, 1, 3)
    again = store_file(
        db, path, settings=settings, chunk=chunk, piece=piece, reader_process=reader_process
    )
    assert (again.accepted, again.duplicate, again.rejected) == (0, 7, 3)


@pytest.mark.parametrize("reader_process", [False, True])
def test_pieces_are_committed_a_chunk_at_a_time(
    db: Session, settings: Settings, tmp_path: Path, reader_process: bool
) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(body())
    commits: list[int] = []
    store_file(
        db,
        path,
        settings=settings,
        chunk=5,
        piece=2,
        reader_process=reader_process,
        on_chunk=lambda so_far, _consumed: commits.append(so_far.received),
    )
    # Pieces of two records fill a chunk of five at the third piece; the rest is the last.
    assert commits == [6, 10]
