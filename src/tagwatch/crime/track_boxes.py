"""Where each device's fixes lay, hour by hour: the store-side index for crimes over long periods.

A crime against a month of fixes for thousands of people should not read the month: it
should read the few people who could have been near it. `track_hour_box` holds, per device
and hour, the bounding box (metres, British National Grid) of the device's stored fixes
observed from the hour's start to REACH_MS after its end. A track segment lasts at most the
max gap, so with a max gap up to REACH_MS every segment starting in an hour lies inside that
hour's box, and a segment that comes within the radius of a crime has a box that does. A
crime with window [w0, w1] therefore needs only the devices with a box of an hour from
w0 - max gap to w1 that comes within the radius of it; the matcher then reads their fixes in
the window and decides exactly.

Boxes are built from the stored fixes (raw columns only: device, time, position; allocation
and plausibility may change later, so every fix counts), by `refresh_track_boxes`, which
reads the fixes stored since its last call (by record id) and widens the boxes they fall in.
Ingest may call it after storing fixes, a periodic task may, or nobody: a query also reads
the devices of the fixes not yet boxed directly, so an answer never depends on when the
boxes were last refreshed. Fixes are raw and append-only, so boxes only ever grow and merging
the same fix twice changes nothing.

Record ids are the order fixes became visible on SQLite (one writer at a time). On
PostgreSQL a transaction still in flight may hold lower ids than one already committed, so
the mark lags one refresh behind: each refresh notes the last id handed out and the
transactions then writing, and the next one, finding those ended, moves the mark to that id
(every fix up to it is visible by then, or never will be). Until then queries read the rest
directly.

A person may wear two devices in one window (a replacement tag): a segment joining the last
fix of one device to the first of the other is in neither device's box, so people with more
than one allocation in a window are always read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Device
from tagwatch.crime.matcher import MatchParams
from tagwatch.crime.models import TrackBoxState, TrackHourBox
from tagwatch.geo.projection import to_bng
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.models import GpsFix

HOUR_MS = 3_600_000
# Fixes after an hour's end that its box also holds: the longest max gap the boxes serve.
REACH_MS = 1_800_000
# Fixes read per step of a refresh.
_REFRESH_CHUNK = 500_000
# Rows per statement when merging boxes.
_MERGE_ROWS = 5_000
# Rounding slack when comparing a box with a crime (metres).
_SLACK_M = 0.001

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Boxes:
    """Boxes as columns: one row per (device, hour)."""

    device: NDArray[Any]  # whatever names the devices: serials, or codes standing for them
    hour_ms: I64
    min_x: F64
    min_y: F64
    max_x: F64
    max_y: F64

    def __len__(self) -> int:
        return int(self.hour_ms.shape[0])


def boxes_of(device: NDArray[Any], t_ms: I64, x: F64, y: F64) -> Boxes:
    """The boxes that fixes fall in: each fix widens its hour's box and, when it lies within
    REACH_MS of that hour's start, the previous hour's box too. Non-finite positions (outside
    the national grid) are left out, as the matcher leaves them out."""
    finite = np.isfinite(x) & np.isfinite(y)
    device, t_ms, x, y = device[finite], t_ms[finite], x[finite], y[finite]
    hour = t_ms // HOUR_MS * HOUR_MS
    reach = np.flatnonzero(t_ms - hour < REACH_MS)
    names, code = np.unique(device, return_inverse=True)
    code = np.concatenate([code, code[reach]]).astype(np.int64)
    hour = np.concatenate([hour, hour[reach] - HOUR_MS])
    x = np.concatenate([x, x[reach]])
    y = np.concatenate([y, y[reach]])
    if len(hour) == 0:
        empty = np.empty(0)
        return Boxes(names[:0], np.empty(0, dtype=np.int64), empty, empty, empty, empty)
    order = np.lexsort((hour, code))
    code, hour, x, y = code[order], hour[order], x[order], y[order]
    start = np.flatnonzero(
        np.concatenate([[True], (code[1:] != code[:-1]) | (hour[1:] != hour[:-1])])
    )
    return Boxes(
        names[code[start]],
        hour[start],
        np.minimum.reduceat(x, start),
        np.minimum.reduceat(y, start),
        np.maximum.reduceat(x, start),
        np.maximum.reduceat(y, start),
    )


# Widen a stored box, never narrow it: merging is idempotent and order-free.
_MERGE_SQL = text(
    "INSERT INTO track_hour_box (device_serial, hour_ms, min_x, min_y, max_x, max_y)"
    " VALUES (:device_serial, :hour_ms, :min_x, :min_y, :max_x, :max_y)"
    " ON CONFLICT (device_serial, hour_ms) DO UPDATE SET"
    " min_x = CASE WHEN excluded.min_x < track_hour_box.min_x"
    "   THEN excluded.min_x ELSE track_hour_box.min_x END,"
    " min_y = CASE WHEN excluded.min_y < track_hour_box.min_y"
    "   THEN excluded.min_y ELSE track_hour_box.min_y END,"
    " max_x = CASE WHEN excluded.max_x > track_hour_box.max_x"
    "   THEN excluded.max_x ELSE track_hour_box.max_x END,"
    " max_y = CASE WHEN excluded.max_y > track_hour_box.max_y"
    "   THEN excluded.max_y ELSE track_hour_box.max_y END"
)


def merge_boxes(session: Session, boxes: Boxes) -> None:
    """Widen the stored boxes to hold `boxes` (new ones are added)."""
    rows = [
        {
            "device_serial": d,
            "hour_ms": h,
            "min_x": a,
            "min_y": b,
            "max_x": c,
            "max_y": e,
        }
        for d, h, a, b, c, e in zip(
            boxes.device.tolist(),
            boxes.hour_ms.tolist(),
            boxes.min_x.tolist(),
            boxes.min_y.tolist(),
            boxes.max_x.tolist(),
            boxes.max_y.tolist(),
            strict=True,
        )
    ]
    for lo in range(0, len(rows), _MERGE_ROWS):
        session.execute(_MERGE_SQL, rows[lo : lo + _MERGE_ROWS])


def _state(session: Session) -> TrackBoxState:
    query = select(TrackBoxState).where(TrackBoxState.id == 1)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()  # one refresh at a time
    state = session.scalars(query).one_or_none()
    if state is None:
        state = TrackBoxState(id=1, max_record_id=0, pending_record_id=0, pending_xids=[])
        session.add(state)
        session.flush()
    return state


def boxed_up_to(session: Session) -> int:
    """The record id up to which every stored fix is in the boxes."""
    found = session.scalar(select(TrackBoxState.max_record_id).where(TrackBoxState.id == 1))
    return int(found or 0)


def _settled_mark(session: Session, state: TrackBoxState, seen: int) -> int:
    """The id up to which every fix is merged: all that was seen on SQLite; on PostgreSQL the
    last id handed out at the previous refresh, once every transaction then writing has
    ended (the ids handed out now and the transactions writing now are noted for the next)."""
    if session.connection().dialect.name != "postgresql":
        return seen  # SQLite: one writer at a time, so ids become visible in order
    sequence = session.scalar(text("SELECT pg_get_serial_sequence('gps_fix', 'id')"))
    handed_out = session.scalar(text(f"SELECT last_value FROM {sequence}")) if sequence else 0
    writing = {
        str(x) for x in session.scalars(text("SELECT pg_snapshot_xip(pg_current_snapshot())::text"))
    }
    mark = int(state.max_record_id)
    if not writing & set(state.pending_xids or []):
        mark = max(mark, int(state.pending_record_id))
    state.pending_record_id = int(handed_out or 0)
    state.pending_xids = sorted(writing)
    return mark


def refresh_track_boxes(
    session: Session, *, chunk: int = _REFRESH_CHUNK, max_fixes: int | None = None
) -> int:
    """Merge the fixes stored since the last refresh into the boxes; the number merged.

    Safe to call at any time and from ingest (it never commits): a fix merged twice changes
    nothing. `max_fixes` bounds one call's work (the rest waits for the next call)."""
    state = _state(session)
    mark = int(state.max_record_id)
    merged = 0
    while True:
        rows = session.execute(
            select(GpsFix.id, GpsFix.device_serial, GpsFix.t_ms, GpsFix.lon, GpsFix.lat)
            .where(GpsFix.id > mark)
            .order_by(GpsFix.id)
            .limit(chunk)
        ).all()
        if not rows:
            break
        ids, serials, t_ms, lon, lat = zip(*rows, strict=True)
        x, y = to_bng(np.array(lon, dtype=np.float64), np.array(lat, dtype=np.float64))
        merge_boxes(
            session,
            boxes_of(np.array(serials, dtype=np.str_), np.array(t_ms, dtype=np.int64), x, y),
        )
        merged += len(rows)
        mark = int(ids[-1])
        if len(rows) < chunk or (max_fixes is not None and merged >= max_fixes):
            break
    # Never past what was merged: a bounded call may stop before the settled id.
    state.max_record_id = min(mark, _settled_mark(session, state, mark))
    session.flush()
    return merged


def rebuild_track_boxes(session: Session) -> int:
    """Drop every box and build them again from all stored fixes; the number of fixes read."""
    session.execute(delete(TrackHourBox))
    state = _state(session)
    state.max_record_id = 0
    state.pending_record_id = 0
    state.pending_xids = []
    session.flush()
    return refresh_track_boxes(session)


# --- the query side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CrimePlace:
    """A crime as the boxes need it: where (metres, EPSG:27700) and when (epoch ms)."""

    x: float
    y: float
    t_from_ms: int
    t_to_ms: int


def serves(params: MatchParams) -> bool:
    """Whether the boxes can answer for these parameters (a max gap within their reach)."""
    return params.max_gap_ms <= REACH_MS


def candidate_devices(
    session: Session, crimes: Sequence[CrimePlace], params: MatchParams
) -> set[str]:
    """Devices whose fixes could carry a track within the radius of a crime in its window:
    every device that does is among them."""
    if not serves(params):
        raise ValueError("max_gap_s: longer than the track boxes reach; read all fixes")
    reach = params.radius_m + _SLACK_M
    found: set[str] = set()
    box = TrackHourBox
    for crime in crimes:
        w0 = crime.t_from_ms - params.tolerance_ms
        w1 = crime.t_to_ms + params.tolerance_ms
        first_hour = math.floor((w0 - params.max_gap_ms) / HOUR_MS) * HOUR_MS
        last_hour = math.floor(w1 / HOUR_MS) * HOUR_MS
        found.update(
            session.scalars(
                select(box.device_serial)
                .where(
                    box.hour_ms >= first_hour,
                    box.hour_ms <= last_hour,
                    box.min_x <= crime.x + reach,
                    box.max_x >= crime.x - reach,
                    box.min_y <= crime.y + reach,
                    box.max_y >= crime.y - reach,
                )
                .distinct()
            )
        )
    found.update(_unboxed_devices(session, crimes, params))
    return found


def _unboxed_devices(
    session: Session, crimes: Sequence[CrimePlace], params: MatchParams
) -> list[str]:
    """Devices with fixes in reach of the windows that the boxes do not hold yet."""
    low, high = _span(crimes, params)
    mark = boxed_up_to(session)
    newest = session.scalar(select(func.max(GpsFix.id))) or 0
    if newest <= mark:
        return []
    return list(
        session.scalars(
            select(GpsFix.device_serial)
            .where(GpsFix.id > mark, GpsFix.t_ms >= low, GpsFix.t_ms <= high)
            .distinct()
        )
    )


def _span(crimes: Sequence[CrimePlace], params: MatchParams) -> tuple[int, int]:
    """The times of every fix that can carry a segment meeting any of the windows."""
    margin = params.tolerance_ms + params.max_gap_ms
    low = min(c.t_from_ms for c in crimes) - margin
    high = max(c.t_to_ms for c in crimes) + margin
    return math.floor(low), math.ceil(high)


def candidate_allocations(
    session: Session, crimes: Sequence[CrimePlace], params: MatchParams
) -> list[int]:
    """The allocations whose fixes the matcher must read to match `crimes` exactly: those of
    the candidate devices in the windows, and every allocation of a person with more than
    one in the windows (a segment between two devices is in neither device's boxes)."""
    if not crimes:
        return []
    devices = candidate_devices(session, crimes, params)
    low, high = _span(crimes, params)
    start, end = from_ms(low), from_ms(high)
    overlaps = [
        Allocation.fitted_at <= end,
        or_(Allocation.removed_at.is_(None), Allocation.removed_at >= start),
    ]
    people: set[int] = set()
    serials = sorted(devices)
    for lo in range(0, len(serials), 500):
        part = serials[lo : lo + 500]
        people.update(
            session.scalars(
                select(Allocation.person_id)
                .join(Device, Device.id == Allocation.device_id)
                .where(Device.serial.in_(part), *overlaps)
            )
        )
    people.update(
        session.scalars(
            select(Allocation.person_id)
            .where(*overlaps)
            .group_by(Allocation.person_id)
            .having(func.count() > 1)
        )
    )
    ids: set[int] = set()
    ordered = sorted(people)
    for lo in range(0, len(ordered), 500):
        chosen = ordered[lo : lo + 500]
        ids.update(
            session.scalars(
                select(Allocation.id).where(Allocation.person_id.in_(chosen), *overlaps)
            )
        )
    return sorted(ids)


def window_span(
    crimes: Sequence[CrimePlace], params: MatchParams
) -> tuple[dt.datetime, dt.datetime]:
    """The period of fixes the matcher reads for `crimes`."""
    low, high = _span(crimes, params)
    return from_ms(low), from_ms(high)
