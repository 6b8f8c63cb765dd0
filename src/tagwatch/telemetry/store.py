"""Storing one batch's valid records: rows, allocations, plausibility, touched windows.

The batch is handled as columns, not record by record: its rows arrive staged (see
`columns`) and are inserted in one statement with the allocations and static verdicts found
here, static plausibility and the speed chain of devices whose fixes arrive in time order
are judged with NumPy, and only the rare cases (a flagged step, a late fix) fall back to
judging a device's chain one fix at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from tagwatch.telemetry import repository
from tagwatch.telemetry.allocations import NONE, AllocationIndex
from tagwatch.telemetry.columns import Records
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.plausibility import (
    TrackPoint,
    judge_devices,
    static_problem,
    too_fast,
)
from tagwatch.telemetry.repository import TrackState

NO_ALLOCATION = NONE


@dataclass
class Stored:
    """The records of a batch that were stored new, as columns. `device` indexes `serials`;
    `reason` is the static implausibility of a fix (None for events and plausible fixes);
    `record_id` their ids, where the insert tells them (None where it does not)."""

    keys: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    device: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    allocation_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    t_ms: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    lat: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    lon: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    reasons: list[str | None] = field(default_factory=list)
    accuracy_m: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    record_id: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def unallocated(self) -> int:
        return int(np.count_nonzero(self.allocation_id == NO_ALLOCATION))

    def take(self, mask: NDArray[np.bool_]) -> Stored:
        where = np.flatnonzero(mask)
        positions = where.tolist()
        return Stored(
            keys=[self.keys[i] for i in positions],
            serials=self.serials,
            device=self.device[where],
            allocation_id=self.allocation_id[where],
            t_ms=self.t_ms[where],
            lat=self.lat[where],
            lon=self.lon[where],
            reasons=[self.reasons[i] for i in positions],
            accuracy_m=self.accuracy_m[where],
            record_id=None if self.record_id is None else self.record_id[where],
        )


@dataclass
class Windows:
    """Per allocation: the earliest and latest observed time (ms) of the records a batch
    stored or re-judged; what compliance re-evaluates."""

    spans: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add(self, allocation_id: NDArray[np.int64], t_ms: NDArray[np.int64]) -> None:
        attached = allocation_id != NO_ALLOCATION
        if not attached.any():
            return
        owners, times = allocation_id[attached], t_ms[attached]
        order = np.lexsort((times, owners))
        owners, times = owners[order], times[order]
        firsts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        lasts = np.r_[firsts[1:] - 1, owners.shape[0] - 1]
        for owner, low, high in zip(
            owners[firsts].tolist(), times[firsts].tolist(), times[lasts].tolist(), strict=True
        ):
            earlier = self.spans.get(owner)
            if earlier is not None:
                low, high = min(low, earlier[0]), max(high, earlier[1])
            self.spans[owner] = (low, high)

    def as_times(self) -> dict[int, tuple[dt.datetime, dt.datetime]]:
        return {a: (from_ms(low), from_ms(high)) for a, (low, high) in self.spans.items()}


def store_fixes(
    session: Session,
    fixes: Records,
    allocations: AllocationIndex,
    batch_id: int,
    now_ms: int,
    clock_skew_ms: int,
) -> Stored:
    """Insert the staged fixes (insert-or-ignore on the dedupe key); those stored new."""
    if not len(fixes):
        return Stored()
    allocation_ids = allocations.find_coded(fixes.serials, fixes.device, fixes.t_ms)
    lat, lon, t = fixes.lat, fixes.lon, fixes.t_ms
    # The cheap vectorised test first; static_problem words the reason of the few it finds.
    suspect = (
        (t > now_ms + clock_skew_ms)
        | ~((lat >= -90.0) & (lat <= 90.0) & (lon >= -180.0) & (lon <= 180.0))
        | ((lat == 0.0) & (lon == 0.0))
    )
    found: dict[int, str] = {}
    for i in np.flatnonzero(suspect).tolist():
        problem = static_problem(float(lat[i]), float(lon[i]), int(t[i]), now_ms, clock_skew_ms)
        if problem is not None:
            found[i] = problem
    reasons: list[str | None] = [None] * len(fixes)
    for i, problem in found.items():
        reasons[i] = problem
    inserted = repository.insert_staged(
        session, "gps_fix", fixes, allocation_ids, found, batch_id=batch_id, now_ms=now_ms
    )
    stored = Stored(
        fixes.keys,
        fixes.serials,
        fixes.device,
        allocation_ids,
        t,
        lat,
        lon,
        reasons,
        fixes.accuracy_m,
        inserted.record_id,
    )
    return stored if inserted.new is None else stored.take(inserted.new)


def store_events(
    session: Session,
    events: Records,
    allocations: AllocationIndex,
    batch_id: int,
    now_ms: int,
) -> Stored:
    """Insert the staged non-GPS records; those stored new."""
    if not len(events):
        return Stored()
    allocation_ids = allocations.find_coded(events.serials, events.device, events.t_ms)
    inserted = repository.insert_staged(
        session, "device_event", events, allocation_ids, {}, batch_id=batch_id, now_ms=now_ms
    )
    stored = Stored(
        events.keys,
        events.serials,
        events.device,
        allocation_ids,
        events.t_ms,
        events.lat,
        events.lon,
        [None] * len(events),
        events.accuracy_m,
        inserted.record_id,
    )
    return stored if inserted.new is None else stored.take(inserted.new)


# --- the speed chain -----------------------------------------------------------------------


@dataclass
class SpeedVerdicts:
    """What the speed chain decided: the keys of the new fixes it flagged, and the
    allocations of the fixes stored before whose verdict it changed."""

    flagged: set[str] = field(default_factory=set)
    rejudged: set[int] = field(default_factory=set)


def judge_speed(
    session: Session,
    new: Stored,
    states: dict[str, TrackState],
    windows: Windows,
    max_speed_mps: float,
) -> SpeedVerdicts:
    """Run the speed chain (see `plausibility`) over the new, statically plausible fixes;
    store changed verdicts and each device's new chain state. Windows gain the fixes stored
    before whose verdict changed."""
    candidate = np.array([reason is None for reason in new.reasons], dtype=bool)
    if not candidate.any():
        return SpeedVerdicts()
    fixes = new.take(candidate)
    serials, code = fixes.serials, fixes.device
    order = _chain_order(code, fixes.t_ms, fixes.keys)
    code, t = code[order], fixes.t_ms[order]
    lat, lon = fixes.lat[order], fixes.lon[order]
    keys = [fixes.keys[i] for i in order.tolist()]
    firsts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    bounds = np.r_[firsts, code.shape[0]].tolist()

    sequential: dict[str, list[TrackPoint]] = {}
    starts: dict[str, TrackPoint | None] = {}
    previous: dict[str, tuple[str | None, int | None]] = {}  # key -> (verdict, allocation)
    in_order: list[int] = []  # device codes judged in one vectorised pass
    for slot, low in enumerate(bounds[:-1]):
        device = str(serials[code[low]])
        state = states[device]
        if t[low] > state.max_t_ms:
            starts[device] = state.last
            in_order.append(slot)
            continue
        # A late fix: re-judge the device's chain from the earliest new fix on.
        start, chain = repository.chain_context(session, device, int(t[low]))
        starts[device] = start
        sequential[device] = [row.point for row in chain]
        previous.update({row.point.key: (row.reason, row.allocation_id) for row in chain})

    flagged_slots = _steps_too_fast(
        in_order,
        firsts,
        lat,
        lon,
        t,
        [starts.get(str(serials[code[f]])) for f in firsts.tolist()],
        max_speed_mps,
    )
    lasts: dict[str, TrackPoint | None] = {}
    for slot in in_order:
        low, high = bounds[slot], bounds[slot + 1]
        device = str(serials[code[low]])
        if slot in flagged_slots:
            sequential[device] = [
                TrackPoint(int(t[i]), keys[i], float(lat[i]), float(lon[i]))
                for i in range(low, high)
            ]
        else:
            i = high - 1
            lasts[device] = TrackPoint(int(t[i]), keys[i], float(lat[i]), float(lon[i]))

    verdicts, sequential_lasts = judge_devices(
        {device: starts[device] for device in sequential}, sequential, max_speed_mps
    )
    lasts.update(sequential_lasts)
    fresh = set(new.keys)
    changed: list[tuple[str | None, str]] = []
    flagged_new: set[str] = set()
    rejudged_owner: list[int] = []
    rejudged_t: list[int] = []
    for device, points in sequential.items():
        for point, verdict in zip(points, verdicts[device], strict=True):
            if point.key in fresh:
                if verdict is not None:
                    changed.append((verdict, point.key))
                    flagged_new.add(point.key)
                continue
            old_verdict, allocation_id = previous[point.key]
            if verdict != old_verdict:
                changed.append((verdict, point.key))
                if allocation_id is not None:
                    rejudged_owner.append(allocation_id)
                    rejudged_t.append(point.t_ms)
    windows.add(np.array(rejudged_owner, np.int64), np.array(rejudged_t, np.int64))

    touched: dict[str, TrackState] = {}
    for low, high in pairwise(bounds):
        device = str(serials[code[low]])
        touched[device] = TrackState(
            max_t_ms=max(states[device].max_t_ms, int(t[high - 1])), last=lasts[device]
        )
    states.update(touched)
    repository.set_verdicts(session, changed)
    repository.save_tracks(session, touched)
    return SpeedVerdicts(flagged_new, set(rejudged_owner))


def _chain_order(
    code: NDArray[np.intp], t_ms: NDArray[np.int64], keys: list[str]
) -> NDArray[np.intp]:
    """Positions in chain order: by device, then (time, dedupe key)."""
    order = np.lexsort((t_ms, code))
    c, t = code[order], t_ms[order]
    if not ((c[1:] == c[:-1]) & (t[1:] == t[:-1])).any():
        return order
    # Fixes of one device at the same millisecond are ordered by key (rare: sort it all).
    ranked = sorted(range(len(keys)), key=lambda i: (int(code[i]), int(t_ms[i]), keys[i]))
    return np.array(ranked, dtype=np.intp)


def _steps_too_fast(
    slots: list[int],
    firsts: NDArray[np.intp],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    t: NDArray[np.int64],
    starts: list[TrackPoint | None],
    max_speed_mps: float,
) -> set[int]:
    """The device slots (among `slots`) with a step over the limit when every fix is taken
    as plausible; the others are all plausible (the assumption then holds). Positions are in
    chain order, device slot `s` from `firsts[s]`, its chain continuing from `starts[s]`."""
    if not slots:
        return set()
    n = t.shape[0]
    prev_lat = np.r_[np.nan, lat[:-1]]
    prev_lon = np.r_[np.nan, lon[:-1]]
    prev_t = np.r_[0, t[:-1]]
    has_prev = np.ones(n, dtype=bool)
    for first, start in zip(firsts.tolist(), starts, strict=True):
        if start is None:
            has_prev[first] = False
        else:
            prev_lat[first], prev_lon[first], prev_t[first] = start.lat, start.lon, start.t_ms
    slot_of = np.zeros(n, dtype=np.intp)
    slot_of[firsts] = 1
    slot_of = np.cumsum(slot_of) - 1
    wanted = np.zeros(firsts.shape[0], dtype=bool)
    wanted[slots] = True
    check = has_prev & wanted[slot_of]
    fast = np.zeros(n, dtype=bool)
    fast[check] = too_fast(
        prev_lat[check],
        prev_lon[check],
        lat[check],
        lon[check],
        t[check] - prev_t[check],
        max_speed_mps,
    )
    return {int(s) for s in np.unique(slot_of[fast])}
