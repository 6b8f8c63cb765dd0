"""The compliance kernel: records and conditions in, violation findings out.

Pure: NumPy arrays and dataclasses in, `Finding`s out; no database, clock or I/O. Times are
epoch milliseconds (UTC), positions metres on the British National Grid. The result is a
function of the records and the rule set alone (plus `horizon_ms`, the moment evaluated at),
which is what makes re-evaluation idempotent and the outcome independent of the order and
batching in which records arrive.

Geofence rules (curfew address, exclusion and inclusion zones) classify every fix by the
signed distance `d` from the boundary, positive on the breach side, against its accuracy:

    BREACH   d > accuracy                  the whole accuracy circle is in breach
    POSSIBLE 0 < d <= accuracy             the centre is in breach, the circle straddles
    UNSURE   -(accuracy + margin) <= d <= 0
    CLEAR    d < -(accuracy + margin)      clear of the boundary with the exit margin

An episode starts at the first fix in breach at its centre and lasts until the next CLEAR fix
(hysteresis: unsure fixes never end it) or the end of the period in which the rule applies.
It is confirmed when it holds `confirm_fixes` consecutive BREACH fixes or a run of them
lasting `confirm_seconds`; otherwise it is only possible. Device state rules (tamper,
battery, power, alcohol, RF) use the same episode machinery on coded observations.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import shapely
from numpy.typing import NDArray

from tagwatch.compliance.rules import RULES, RuleParams

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
I8 = NDArray[np.int8]
Bools = NDArray[np.bool_]

CLEAR, UNSURE, POSSIBLE, BREACH = -1, 0, 1, 2
NEVER = -(2**62)
FOREVER = 2**62
# Packing (target, time) into one sortable int64: time offsets stay below 2**41 ms (69 years).
_SPAN = 2**41

Status = Literal["possible", "confirmed"]
ZoneKind = Literal["exclusion", "inclusion"]
LocationSource = Literal["gps", "rf", "none"]


# --- time intervals ----------------------------------------------------------------------


@dataclass(frozen=True)
class Intervals:
    """Disjoint half-open [start, end) intervals in epoch ms, sorted."""

    spans: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def of(pairs: Iterable[tuple[int, int]]) -> Intervals:
        merged: list[list[int]] = []
        for start, end in sorted((int(s), int(e)) for s, e in pairs if e > s):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return Intervals(tuple((s, e) for s, e in merged))

    @staticmethod
    def always() -> Intervals:
        return Intervals(((NEVER, FOREVER),))

    def intersect(self, other: Intervals) -> Intervals:
        out: list[tuple[int, int]] = []
        i = j = 0
        while i < len(self.spans) and j < len(other.spans):
            start = max(self.spans[i][0], other.spans[j][0])
            end = min(self.spans[i][1], other.spans[j][1])
            if start < end:
                out.append((start, end))
            if self.spans[i][1] < other.spans[j][1]:
                i += 1
            else:
                j += 1
        return Intervals(tuple(out))

    def subtract(self, other: Intervals) -> Intervals:
        out: list[tuple[int, int]] = []
        for start, end in self.spans:
            cursor = start
            for cut_start, cut_end in other.spans:
                if cut_end <= cursor or cut_start >= end:
                    continue
                if cut_start > cursor:
                    out.append((cursor, cut_start))
                cursor = max(cursor, cut_end)
            if cursor < end:
                out.append((cursor, end))
        return Intervals(tuple(out))

    def contains(self, t_ms: int) -> bool:
        index = bisect.bisect_right(self.spans, (t_ms, FOREVER)) - 1
        return index >= 0 and self.spans[index][0] <= t_ms < self.spans[index][1]

    def total_ms(self) -> int:
        return sum(end - start for start, end in self.spans)


# --- inputs and outputs --------------------------------------------------------------------


def _empty_i64() -> I64:
    return np.empty(0, np.int64)


def _empty_f64() -> F64:
    return np.empty(0, np.float64)


@dataclass(frozen=True)
class Fixes:
    """GPS fixes of one or more allocations, sorted by (allocation_id, t_ms, record_id)."""

    allocation_id: I64 = field(default_factory=_empty_i64)
    record_id: I64 = field(default_factory=_empty_i64)
    t_ms: I64 = field(default_factory=_empty_i64)
    x: F64 = field(default_factory=_empty_f64)
    y: F64 = field(default_factory=_empty_f64)
    accuracy_m: F64 = field(default_factory=_empty_f64)

    def __len__(self) -> int:
        return int(self.t_ms.shape[0])

    def sorted(self) -> Fixes:
        order = np.lexsort((self.record_id, self.t_ms, self.allocation_id))
        return Fixes(
            self.allocation_id[order],
            self.record_id[order],
            self.t_ms[order],
            self.x[order],
            self.y[order],
            self.accuracy_m[order],
        )


class Observation(NamedTuple):
    """A non-GPS record: `type` is rf, status, alcohol or checkin, `fields` its payload.

    Evidence mixes fixes and observations, so their record ids must not collide: callers
    number observations negatively (the service passes minus the stored id). A named tuple:
    an evaluation makes one for every record it loads.
    """

    record_id: int
    t_ms: int
    type: str
    fields: Mapping[str, Any]


# Non-GPS record types, by their index in `Observations.type` (-1: another type).
OBSERVATION_TYPES = ("rf", "status", "alcohol", "checkin")
RF, STATUS, ALCOHOL, CHECKIN = range(4)


class ObservedField(NamedTuple):
    """A payload field the rules read, held as a column of `Observations`. With `codes`, each
    listed value reads as its code, any other value as -1 and no value as `missing`; without,
    the field is a number (NaN when absent). Records of other types read `missing` (NaN)."""

    type: str
    name: str
    codes: Mapping[str | bool, int] | None = None
    missing: int = -1


# Good states code 0 and bad ones 1 or more.
OBSERVED_FIELDS: tuple[ObservedField, ...] = (
    ObservedField("status", "strap", {"ok": 0, "open": 1}),
    ObservedField("status", "body", {"ok": 0, "no_contact": 1}),
    ObservedField("status", "case", {"ok": 0, "opened": 1}),
    ObservedField("status", "unit_power", {"on": 0, "off": 1}),
    ObservedField("status", "unit_moved", {False: 0, True: 1}),
    ObservedField("status", "battery_pct"),
    ObservedField("rf", "state", {"in_range": 0, "out_of_range": 1}),
    # A reading that states no status reads as ok.
    ObservedField("alcohol", "status", {"ok": 0, "obstructed": 1, "tamper": 2}, missing=0),
    ObservedField("alcohol", "tac_g_dl"),
    ObservedField("checkin", "result", {"success": 0, "missed": 1, "failed": 2}),
)


def _empty_fields(n: int = 0) -> dict[str, NDArray[Any]]:
    return {
        f.name: np.full(n, np.nan) if f.codes is None else np.full(n, f.missing, np.int8)
        for f in OBSERVED_FIELDS
    }


@dataclass(frozen=True)
class Observations:
    """Non-GPS records of one or more allocations as columns: `type` indexes
    `OBSERVATION_TYPES`, `fields` holds a column per `OBSERVED_FIELDS` entry, by name. The
    rules read these columns across all allocations at once, never a record at a time."""

    allocation_id: I64 = field(default_factory=_empty_i64)
    record_id: I64 = field(default_factory=_empty_i64)
    t_ms: I64 = field(default_factory=_empty_i64)
    type: I8 = field(default_factory=lambda: np.empty(0, np.int8))
    fields: Mapping[str, NDArray[Any]] = field(default_factory=_empty_fields)

    def __len__(self) -> int:
        return int(self.t_ms.shape[0])

    def take(self, index: I64) -> Observations:
        return Observations(
            self.allocation_id[index],
            self.record_id[index],
            self.t_ms[index],
            self.type[index],
            {name: column[index] for name, column in self.fields.items()},
        )

    @staticmethod
    def concat(parts: Sequence[Observations]) -> Observations:
        if not parts:
            return Observations()
        return Observations(
            np.concatenate([p.allocation_id for p in parts]),
            np.concatenate([p.record_id for p in parts]),
            np.concatenate([p.t_ms for p in parts]),
            np.concatenate([p.type for p in parts]),
            {f.name: np.concatenate([p.fields[f.name] for p in parts]) for f in OBSERVED_FIELDS},
        )

    @staticmethod
    def of(records: Iterable[tuple[int, Observation]]) -> Observations:
        """Columns from (allocation id, observation) pairs: for a few records (a record at a
        time in Python)."""
        rows = list(records)
        fields = _empty_fields(len(rows))
        for i, (_, o) in enumerate(rows):
            for spec in OBSERVED_FIELDS:
                value = o.fields.get(spec.name) if o.type == spec.type else None
                if value is None:
                    continue
                if spec.codes is None:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        fields[spec.name][i] = value
                elif isinstance(value, str | bool):
                    fields[spec.name][i] = spec.codes.get(value, -1)
                else:
                    fields[spec.name][i] = -1
        types = {name: index for index, name in enumerate(OBSERVATION_TYPES)}
        return Observations(
            np.array([a for a, _ in rows], np.int64),
            np.array([o.record_id for _, o in rows], np.int64),
            np.array([o.t_ms for _, o in rows], np.int64),
            np.array([types.get(o.type, -1) for _, o in rows], np.int8),
            fields,
        )


@dataclass(frozen=True)
class CurfewSpec:
    condition_id: int
    home_x: float
    home_y: float
    periods: Intervals


@dataclass(frozen=True)
class ZoneSpec:
    condition_id: int
    kind: ZoneKind
    geometry: shapely.Geometry
    schedule: Intervals | None = None
    suspended: Intervals = Intervals()


@dataclass(frozen=True)
class AllocationSpec:
    """One allocation's conditions and non-GPS records for an evaluation.

    `prior_record_ms` / `prior_fix_ms`: the latest record (any kind) and the latest accepted
    fix before the records given, or None when there is none since fitting; gap rules measure
    from them.
    """

    allocation_id: int
    active: Intervals
    location_source: LocationSource = "gps"
    reporting_interval_s: float = 60.0
    curfews: tuple[CurfewSpec, ...] = ()
    zones: tuple[ZoneSpec, ...] = ()
    absences: Intervals = Intervals()
    observations: tuple[Observation, ...] = ()
    prior_record_ms: int | None = None
    prior_fix_ms: int | None = None


@dataclass(frozen=True)
class Finding:
    allocation_id: int
    rule_id: str
    rule_version: str
    condition_id: int | None
    start_ms: int
    end_ms: int | None
    status: Status
    evidence: tuple[int, ...]

    @property
    def key(self) -> tuple[int, str, int, int]:
        """The natural key a persisted violation is reconciled on."""
        return (self.allocation_id, self.rule_id, self.condition_id or 0, self.start_ms)


# --- episodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Episodes:
    first: I64  # index of the first element in breach at its centre
    last: I64  # index of the last element that is not clear
    end_ms: I64  # -1 when open
    confirmed: Bools


def _episodes(
    part: I64,
    t: I64,
    code: I8,
    period_end: I64,
    horizon_ms: int,
    confirm_count: int,
    confirm_ms: int,
) -> _Episodes:
    """Episodes in coded observations sorted by (part, t); `part` numbers the periods."""
    n = t.shape[0]
    if n == 0 or not bool(np.any(code >= POSSIBLE)):
        return _Episodes(_empty_i64(), _empty_i64(), _empty_i64(), np.empty(0, np.bool_))
    new_part = np.empty(n, np.bool_)
    new_part[0] = True
    new_part[1:] = part[1:] != part[:-1]
    clear = code == CLEAR
    starts_segment = new_part.copy()
    starts_segment[1:] |= clear[:-1]
    segment = np.cumsum(starts_segment) - 1
    bad = np.flatnonzero(code >= POSSIBLE)
    seg_of_bad = segment[bad]
    keep = np.empty(bad.shape[0], np.bool_)
    keep[0] = True
    keep[1:] = seg_of_bad[1:] != seg_of_bad[:-1]
    first = bad[keep]
    segs = seg_of_bad[keep]
    # Last element of each segment with an episode: a clear fix there ends the episode.
    seg_last = np.flatnonzero(np.append(segment[1:] != segment[:-1], True))
    tail = seg_last[segs]
    terminated = clear[tail]
    last = np.where(terminated, tail - 1, tail)
    p_end = period_end[first]
    end_ms = np.where(
        terminated,
        np.minimum(t[tail], p_end),
        np.where(p_end <= horizon_ms, p_end, -1),
    )
    # Runs of whole-breach elements; a run confirms its segment by count or by duration.
    breach = code == BREACH
    run_start = breach.copy()
    run_start[1:] &= ~breach[:-1] | starts_segment[1:]
    run_ids = np.cumsum(run_start) - 1
    b_idx = np.flatnonzero(breach)
    confirmed = np.zeros(first.shape[0], np.bool_)
    if b_idx.shape[0]:
        rid = run_ids[b_idx]
        rs = np.flatnonzero(np.concatenate(([True], rid[1:] != rid[:-1])))
        re = np.append(rs[1:], rid.shape[0]) - 1
        count = re - rs + 1
        span = t[b_idx[re]] - t[b_idx[rs]]
        good = (count >= confirm_count) | (span >= confirm_ms)
        good_segs = np.unique(segment[b_idx[rs[good]]])
        confirmed = np.isin(segs, good_segs)
    return _Episodes(first, last, end_ms.astype(np.int64), confirmed)


def _findings(
    episodes: _Episodes,
    record_id: I64,
    code: I8,
    allocation_of: Sequence[int] | I64,
    owner: I64,
    rule_id: str,
    condition_of: Sequence[int | None],
    t: I64,
) -> list[Finding]:
    """Turn episodes into findings; `owner[i]` indexes `allocation_of`/`condition_of`."""
    rule = RULES[rule_id]
    out: list[Finding] = []
    for first, last, end, confirmed in zip(
        episodes.first.tolist(),
        episodes.last.tolist(),
        episodes.end_ms.tolist(),
        episodes.confirmed.tolist(),
        strict=True,
    ):
        span = slice(first, last + 1)
        ids = record_id[span][code[span] >= UNSURE]
        target = int(owner[first])
        out.append(
            Finding(
                allocation_id=int(allocation_of[target]),
                rule_id=rule_id,
                rule_version=rule.version,
                condition_id=condition_of[target],
                start_ms=int(t[first]),
                end_ms=None if end < 0 else int(end),
                status="confirmed" if confirmed else "possible",
                evidence=tuple(ids.tolist()),
            )
        )
    return out


def _classify(d: F64, accuracy: F64, margin: float) -> I8:
    return np.where(
        d > accuracy,
        BREACH,
        np.where(d > 0, POSSIBLE, np.where(d >= -(accuracy + margin), UNSURE, CLEAR)),
    ).astype(np.int8)


def _apply_grace(findings: list[Finding], grace_ms: int, horizon_ms: int) -> list[Finding]:
    return [f for f in findings if (f.end_ms or horizon_ms) - f.start_ms >= grace_ms]


# --- geofences: curfew address and zones ---------------------------------------------------

# Per curfew: the times of fixes and whether each put the person at the address.
Sighting = tuple[I64, Bools]


@dataclass(frozen=True)
class _Target:
    slot: int  # index into the allocation list
    rule_id: str
    condition_id: int
    active: Intervals
    geometry: shapely.Geometry | None  # None: the curfew circle
    centre: tuple[float, float] = (0.0, 0.0)


def _signed_distances(
    targets: Sequence[_Target],
    counts: I64,
    x: F64,
    y: F64,
    accuracy: F64,
    params: RuleParams,
) -> F64:
    """Distance from the boundary per (target, fix) pair, positive on the breach side.

    Pairs come target by target, curfew circles first (`counts` pairs per target), so each
    kind is one contiguous slice and per-target values spread with `np.repeat`. Circles are
    exact in NumPy. Polygons are screened by their bounding box first: a fix whose accuracy
    circle plus margin lies outside the box is clear of the polygon without an exact test,
    and so is one deep inside a disk known to lie within it; only the rest reach the
    vectorised Shapely calls. Screened fixes get a bound that classifies them the same way.
    """
    n = int(counts.sum())
    d = np.empty(n, np.float64)
    circles = sum(1 for t in targets if t.geometry is None)
    split = int(counts[:circles].sum())
    if split:
        centres = np.array([t.centre for t in targets[:circles]], np.float64)
        dx = x[:split] - np.repeat(centres[:, 0], counts[:circles])
        dy = y[:split] - np.repeat(centres[:, 1], counts[:circles])
        d[:split] = np.sqrt(dx * dx + dy * dy) - params.curfew_radius_m
    if split == n:
        return d
    polygons = targets[circles:]
    per = counts[circles:]
    geoms = np.array([t.geometry for t in polygons], dtype=object)
    bounds = shapely.bounds(geoms)
    px, py = x[split:], y[split:]
    dx = np.maximum(
        np.maximum(np.repeat(bounds[:, 0], per) - px, px - np.repeat(bounds[:, 2], per)), 0.0
    )
    dy = np.maximum(
        np.maximum(np.repeat(bounds[:, 1], per) - py, py - np.repeat(bounds[:, 3], per)), 0.0
    )
    dist = np.sqrt(dx * dx + dy * dy)
    need = accuracy[split:] + params.exit_margin_m
    screened = dist > need
    inside = np.zeros(n - split, np.bool_)
    # Inside, a disk known to lie within the polygon bounds the distance to its boundary
    # from below: fixes deep inside it need no exact test either.
    cx, cy, inner = _inner_disks(geoms)
    rx = px - np.repeat(cx, per)
    ry = py - np.repeat(cy, per)
    depth = np.repeat(inner, per) - np.sqrt(rx * rx + ry * ry)
    deep = ~screened & (depth > need)
    inside[deep] = True
    dist[deep] = depth[deep]
    screened |= deep
    exact = np.flatnonzero(~screened)
    if exact.shape[0]:
        own = np.repeat(np.arange(len(polygons), dtype=np.int64), per)[exact]
        shapely.prepare(geoms)
        inside[exact] = shapely.contains_xy(geoms[own], px[exact], py[exact])
        boundaries = shapely.boundary(geoms)
        dist[exact] = shapely.distance(boundaries[own], shapely.points(px[exact], py[exact]))
    exclusion = np.array([t.rule_id == "zone.exclusion.entry" for t in polygons], np.bool_)
    breach_inside = np.repeat(exclusion, per)
    d[split:] = np.where(inside == breach_inside, dist, -dist)
    return d


def _inner_disks(geoms: NDArray[np.object_]) -> tuple[F64, F64, F64]:
    """Per polygon a disk inside it: centred on a point on its surface, up to its boundary."""
    centres = shapely.point_on_surface(geoms)
    radius = shapely.distance(shapely.boundary(geoms), centres)
    return shapely.get_x(centres), shapely.get_y(centres), np.asarray(radius, np.float64)


def _ranges(lo: I64, hi: I64) -> tuple[I64, I64]:
    """(owner, index) for every index in [lo[k], hi[k]) of every k, in that order."""
    counts = hi - lo
    owner = np.repeat(np.arange(lo.shape[0], dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    index = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(offsets - lo, counts)
    return owner, index


def _slots_of(allocation_ids: I64, of: I64) -> tuple[I64, I64]:
    """For records owned by `of` (allocation ids): the indices of those whose allocation is
    among `allocation_ids`, and each one's slot (index in `allocation_ids`)."""
    by_id = np.argsort(allocation_ids, kind="stable")
    pos = np.minimum(np.searchsorted(allocation_ids[by_id], of), allocation_ids.shape[0] - 1)
    known = np.flatnonzero(allocation_ids[by_id][pos] == of)
    return known, by_id[pos][known]


def _pairs(fixes: Fixes, targets: Sequence[_Target], allocation_ids: I64) -> tuple[I64, I64, I64]:
    """(target index, fix index) for every fix of every target's allocation, and the count
    of pairs per target."""
    if not targets:
        return _empty_i64(), _empty_i64(), _empty_i64()
    alloc = allocation_ids[np.array([t.slot for t in targets], np.int64)]
    lo = np.searchsorted(fixes.allocation_id, alloc, "left")
    hi = np.searchsorted(fixes.allocation_id, alloc, "right")
    owner, fix_index = _ranges(lo, hi)
    return owner, fix_index, hi - lo


def _active_membership(
    periods: Sequence[Intervals], owner: I64, t: I64, base: int
) -> tuple[I64, I64]:
    """Per element, sorted by (owner, t): the global index of the period of `periods[owner]`
    containing it (-1: none) and that period's end."""
    starts: list[int] = []
    ends: list[int] = []
    for index, active in enumerate(periods):
        offset = index * _SPAN - base
        for start, end in active.spans:
            lo = max(start, base) + offset
            hi = min(end, base + _SPAN - 1) + offset
            if hi > lo:
                starts.append(lo)
                ends.append(hi)
    if not starts:
        return np.full(t.shape[0], -1, np.int64), np.zeros(t.shape[0], np.int64)
    s = np.array(starts, np.int64)
    e = np.array(ends, np.int64)
    packed = owner * _SPAN + (t - base)
    pos = np.searchsorted(s, packed, "right") - 1
    safe = np.maximum(pos, 0)
    inside = (pos >= 0) & (packed < e[safe])
    period_end = e[safe] - owner * _SPAN + base
    # An unbounded period never ends inside the horizon.
    period_end = np.where(period_end >= base + _SPAN - 1, FOREVER, period_end)
    return np.where(inside, pos, -1), period_end


def _geofence_findings(
    allocations: Sequence[AllocationSpec],
    fixes: Fixes,
    params: RuleParams,
    horizon_ms: int,
) -> tuple[list[Finding], dict[int, dict[int, Sighting]]]:
    """Curfew (GPS) and zone findings, and per slot and curfew where each fix put them."""
    targets: list[_Target] = []
    for slot, spec in enumerate(allocations):
        if spec.location_source == "gps":
            for curfew in spec.curfews:
                active = curfew.periods.intersect(spec.active).subtract(spec.absences)
                targets.append(
                    _Target(
                        slot,
                        "curfew.absence.gps",
                        curfew.condition_id,
                        active,
                        None,
                        (curfew.home_x, curfew.home_y),
                    )
                )
        for zone in spec.zones:
            schedule = zone.schedule if zone.schedule is not None else Intervals.always()
            active = schedule.intersect(spec.active).subtract(zone.suspended)
            rule_id = "zone.exclusion.entry" if zone.kind == "exclusion" else "zone.inclusion.exit"
            targets.append(_Target(slot, rule_id, zone.condition_id, active, zone.geometry))
    presence: dict[int, dict[int, Sighting]] = {}
    if not targets or len(fixes) == 0:
        return [], presence
    allocation_ids = np.array([a.allocation_id for a in allocations], np.int64)
    # Curfew circles first: each kind of target is then one contiguous run of pairs.
    targets.sort(key=lambda target: target.geometry is not None)
    owner, fix_index, counts = _pairs(fixes, targets, allocation_ids)
    t = fixes.t_ms[fix_index]
    accuracy = fixes.accuracy_m[fix_index]
    d = _signed_distances(targets, counts, fixes.x[fix_index], fixes.y[fix_index], accuracy, params)
    bounds = np.searchsorted(owner, np.arange(len(targets) + 1))
    for index, target in enumerate(targets):
        if target.geometry is None:
            lo, hi = int(bounds[index]), int(bounds[index + 1])
            presence.setdefault(target.slot, {})[target.condition_id] = (t[lo:hi], d[lo:hi] <= 0)
    if not t.shape[0]:  # the fixes belong to allocations with no geofence
        return [], presence
    period, period_end = _active_membership(
        [target.active for target in targets], owner, t, int(t.min()) - 1
    )
    keep = period >= 0
    owner, t, d, accuracy = owner[keep], t[keep], d[keep], accuracy[keep]
    period, period_end = period[keep], period_end[keep]
    record = fixes.record_id[fix_index[keep]]
    code = _classify(d, accuracy, params.exit_margin_m)
    episodes = _episodes(
        period,
        t,
        code,
        period_end,
        horizon_ms,
        params.confirm_fixes,
        int(params.confirm_seconds * 1000),
    )
    slots = [target.slot for target in targets]
    conditions: list[int | None] = [target.condition_id for target in targets]
    findings: list[Finding] = []
    rule_of_target = np.array([target.rule_id for target in targets], dtype=object)
    episode_rules = rule_of_target[owner[episodes.first]]
    for rule_id in sorted(set(rule_of_target.tolist())):
        chosen = np.flatnonzero(episode_rules == rule_id)
        subset = _Episodes(
            episodes.first[chosen],
            episodes.last[chosen],
            episodes.end_ms[chosen],
            episodes.confirmed[chosen],
        )
        found = _findings(
            subset, record, code, allocation_ids[slots], owner, rule_id, conditions, t
        )
        if rule_id == "curfew.absence.gps":
            found = _apply_grace(found, int(params.curfew_grace_seconds * 1000), horizon_ms)
        findings.extend(found)
    return findings, presence


# --- device state rules ----------------------------------------------------------------------
# Every rule below reads the observations of all the allocations at once, as columns sorted
# by (slot, time, record): a rule is a handful of array operations, whatever the number of
# allocations, and Python runs only per finding.


@dataclass(frozen=True)
class _Observed:
    """The observations of the allocations evaluated, sorted by (slot, t_ms, record_id), with
    each one's slot and the period of its allocation's active time that holds it."""

    slot: I64
    rows: Observations
    period: I64  # global index of the active period holding it, -1: none
    period_end: I64
    allocation_ids: I64

    @staticmethod
    def of(allocations: Sequence[AllocationSpec], observations: Observations) -> _Observed:
        ids = np.array([a.allocation_id for a in allocations], np.int64)
        empty = _Observed(_empty_i64(), Observations(), _empty_i64(), _empty_i64(), ids)
        if not ids.shape[0] or not len(observations):
            return empty
        known, slot = _slots_of(ids, observations.allocation_id)
        order = np.lexsort((observations.record_id[known], observations.t_ms[known], slot))
        rows = observations.take(known[order])
        slot = slot[order]
        if not slot.shape[0]:
            return empty
        period, period_end = _active_membership(
            [a.active for a in allocations], slot, rows.t_ms, int(rows.t_ms.min()) - 1
        )
        return _Observed(slot, rows, period, period_end, ids)

    def findings(
        self, rule_id: str, chosen: I64, code: NDArray[Any], horizon_ms: int, confirm: int = 1
    ) -> list[Finding]:
        """Episodes of a state over the allocations' active time: `chosen` rows, coded."""
        code = code.astype(np.int8)
        if not bool(np.any(code >= POSSIBLE)):
            return []
        inside = self.period[chosen] >= 0
        chosen, code = chosen[inside], code[inside]
        t = self.rows.t_ms[chosen]
        episodes = _episodes(
            self.period[chosen], t, code, self.period_end[chosen], horizon_ms, confirm, FOREVER
        )
        return _findings(
            episodes,
            self.rows.record_id[chosen],
            code,
            self.allocation_ids,
            self.slot[chosen],
            rule_id,
            [None] * self.allocation_ids.shape[0],
            t,
        )


# (rule, field): the field's good value (code 0) clears, its bad value (1) is a breach.
_STATE_RULES: tuple[tuple[str, str], ...] = (
    ("tamper.strap", "strap"),
    ("tamper.body", "body"),
    ("tamper.case", "case"),
    ("home_unit.power_loss", "unit_power"),
    ("home_unit.moved", "unit_moved"),
)


def _band(value: F64, breach_below: float, clear_from: float) -> I8:
    return np.where(
        value < breach_below, BREACH, np.where(value >= clear_from, CLEAR, UNSURE)
    ).astype(np.int8)


def _device_state_findings(
    observed: _Observed, params: RuleParams, horizon_ms: int
) -> list[Finding]:
    """Tamper, home unit, battery and alcohol episodes."""
    rows = observed.rows
    findings: list[Finding] = []
    status = rows.type == STATUS
    for rule_id, name in _STATE_RULES:
        value = rows.fields[name]
        chosen = np.flatnonzero(status & (value >= 0))
        code = np.where(value[chosen] == 0, CLEAR, BREACH)
        findings += observed.findings(rule_id, chosen, code, horizon_ms)
    pct = rows.fields["battery_pct"]
    chosen = np.flatnonzero(status & ~np.isnan(pct))
    p = pct[chosen]
    low = _band(p, params.battery_low_pct, params.battery_recovered_pct)
    flat = np.where(p <= params.battery_flat_pct, BREACH, _band(p, 0.0, params.battery_low_pct))
    findings += observed.findings("battery.low", chosen, low, horizon_ms)
    findings += observed.findings("battery.flat", chosen, flat, horizon_ms)
    chosen = np.flatnonzero(rows.type == ALCOHOL)
    if chosen.shape[0]:
        state = rows.fields["status"][chosen]
        tac = rows.fields["tac_g_dl"][chosen]
        detected = np.where(
            (state != 0) | np.isnan(tac),
            UNSURE,
            np.where(tac >= params.alcohol_threshold_g_dl, BREACH, CLEAR),
        )
        findings += observed.findings(
            "alcohol.detected", chosen, detected, horizon_ms, params.alcohol_confirm_samples
        )
        for rule_id, bad in (("alcohol.obstruction", 1), ("alcohol.tamper", 2)):
            code = np.where(state == bad, BREACH, CLEAR)
            findings += observed.findings(rule_id, chosen, code, horizon_ms)
    return findings


def _checkin_findings(observed: _Observed) -> list[Finding]:
    rows = observed.rows
    result = rows.fields["result"]
    chosen = np.flatnonzero((rows.type == CHECKIN) & (result >= 1) & (observed.period >= 0))
    out: list[Finding] = []
    # Of check-ins with one natural key, the first in (time, record) order is kept: it is the
    # one added last, and the last finding with a key wins.
    for i in reversed(chosen.tolist()):
        rule_id = "checkin.missed" if result[i] == 1 else "checkin.failed"
        t = int(rows.t_ms[i])
        out.append(
            Finding(
                int(observed.allocation_ids[observed.slot[i]]),
                rule_id,
                RULES[rule_id].version,
                None,
                t,
                t,
                "confirmed",
                (int(rows.record_id[i]),),
            )
        )
    return out


def _rf_rows(observed: _Observed) -> I64:
    """The RF records with a known state (0 in range, 1 out), in (slot, t, record) order."""
    rows = observed.rows
    return np.flatnonzero((rows.type == RF) & (rows.fields["state"] >= 0))


def _rf_findings(
    allocations: Sequence[AllocationSpec], observed: _Observed, params: RuleParams, horizon_ms: int
) -> list[Finding]:
    """RF absence per curfew; the state at each period's start carries from before it."""
    rf = _rf_rows(observed)
    targets = [
        (slot, curfew.condition_id, curfew.periods.intersect(spec.active).subtract(spec.absences))
        for slot, spec in enumerate(allocations)
        if spec.location_source == "rf"
        for curfew in spec.curfews
    ]
    if not rf.shape[0] or not targets:
        return []
    slot = observed.slot[rf]
    t = observed.rows.t_ms[rf]
    record = observed.rows.record_id[rf]
    code = np.where(observed.rows.fields["state"][rf] == 1, BREACH, CLEAR).astype(np.int8)
    target_slot = np.array([s for s, _, _ in targets], np.int64)
    owner, index = _ranges(
        np.searchsorted(slot, target_slot, "left"), np.searchsorted(slot, target_slot, "right")
    )
    # A state out of range before a period starts carries into it, as if observed at its start.
    carry_owner = np.array(
        [k for k, (_, _, active) in enumerate(targets) for _ in active.spans], np.int64
    )
    carry_t = np.array([s for _, _, active in targets for s, _ in active.spans], np.int64)
    base = int(t.min()) - 1
    packed = slot * _SPAN + (t - base)
    wanted = target_slot[carry_owner] * _SPAN + np.clip(carry_t - base, -1, _SPAN - 1)
    before = np.searchsorted(packed, wanted, "left") - 1
    safe = np.maximum(before, 0)
    carried = (before >= 0) & (slot[safe] == target_slot[carry_owner]) & (code[safe] == BREACH)
    owner = np.concatenate((owner, carry_owner[carried]))
    pair_t = np.concatenate((t[index], carry_t[carried]))
    pair_record = np.concatenate((record[index], record[safe[carried]]))
    pair_code = np.concatenate((code[index], np.full(int(carried.sum()), BREACH, np.int8)))
    if not bool(np.any(pair_code >= POSSIBLE)):
        return []
    order = np.lexsort((pair_record, pair_t, owner))
    owner, pair_t, pair_record, pair_code = (
        owner[order],
        pair_t[order],
        pair_record[order],
        pair_code[order],
    )
    period, period_end = _active_membership(
        [active for _, _, active in targets], owner, pair_t, int(pair_t.min()) - 1
    )
    keep = period >= 0
    episodes = _episodes(
        period[keep], pair_t[keep], pair_code[keep], period_end[keep], horizon_ms, 1, FOREVER
    )
    found = _findings(
        episodes,
        pair_record[keep],
        pair_code[keep],
        observed.allocation_ids[target_slot],
        owner[keep],
        "curfew.absence.rf",
        [condition for _, condition, _ in targets],
        pair_t[keep],
    )
    return _apply_grace(found, int(params.curfew_grace_seconds * 1000), horizon_ms)


def _rf_states(observed: _Observed) -> dict[int, tuple[I64, Bools]]:
    """Per slot: the times of its RF records with a known state and whether each was in
    range, sorted by (time, in range)."""
    rf = _rf_rows(observed)
    if not rf.shape[0]:
        return {}
    slot = observed.slot[rf]
    t = observed.rows.t_ms[rf]
    home = observed.rows.fields["state"][rf] == 0
    order = np.lexsort((home, t, slot))
    slot, t, home = slot[order], t[order], home[order]
    bounds = np.flatnonzero(np.concatenate(([True], slot[1:] != slot[:-1], [True])))
    return {
        int(slot[lo]): (t[lo:hi], home[lo:hi])
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    }


def _no_presence_findings(
    spec: AllocationSpec,
    params: RuleParams,
    horizon_ms: int,
    sightings: Mapping[int, Sighting],
    rf_states: tuple[I64, Bools],
) -> list[Finding]:
    """A curfew period that starts with nothing showing the person at home.

    Evidence of presence: a fix at the address between the start and the grace deadline,
    or the last fix in the look-back before the start at the address (GPS); the RF state at
    the deadline in range (RF). Once fired, the finding ends at the first evidence after it.
    """
    grace = int(params.presence_grace_seconds * 1000)
    lookback = int(params.presence_lookback_seconds * 1000)
    rule = RULES["curfew.no_presence"]
    out: list[Finding] = []
    for curfew in spec.curfews:
        if spec.location_source == "gps":
            t_all, home = sightings.get(curfew.condition_id, (_empty_i64(), np.empty(0, np.bool_)))
        else:
            t_all, home = rf_states
        seen = t_all[home]
        active = curfew.periods.intersect(spec.active).subtract(spec.absences)
        for start, end in active.spans:
            deadline = start + grace
            if deadline > horizon_ms or deadline >= end:
                continue
            lo = int(np.searchsorted(seen, start, "left"))
            if lo < seen.shape[0] and seen[lo] <= deadline:
                continue
            if spec.location_source == "gps":
                before = int(np.searchsorted(t_all, start, "left")) - 1
                if before >= 0 and t_all[before] >= start - lookback and home[before]:
                    continue
            else:
                state_at = int(np.searchsorted(t_all, deadline, "right")) - 1
                if state_at >= 0 and home[state_at]:
                    continue
            later = seen[(seen > deadline) & (seen < end)]
            if later.shape[0]:
                finish: int | None = int(later[0])
            else:
                finish = end if end <= horizon_ms else None
            out.append(
                Finding(
                    spec.allocation_id,
                    rule.rule_id,
                    rule.version,
                    curfew.condition_id,
                    start,
                    finish,
                    "confirmed",
                    (),
                )
            )
    return out


# --- gaps: loss of communication and of location ---------------------------------------------


def _gap_findings(
    allocations: Sequence[AllocationSpec],
    fixes: Fixes,
    observed: _Observed,
    params: RuleParams,
    horizon_ms: int,
) -> list[Finding]:
    """Loss of communication (no record at all) and of location (records but no fix)."""
    watched = [slot for slot, spec in enumerate(allocations) if spec.active.spans]
    if not watched:
        return []
    n = len(allocations)
    fitted = np.zeros(n, np.int64)
    removed = np.zeros(n, np.int64)
    prior_any = np.zeros(n, np.int64)
    prior_fix = np.zeros(n, np.int64)
    limit = np.zeros(n, np.int64)
    for slot in watched:
        spec = allocations[slot]
        fitted[slot], removed[slot] = spec.active.spans[0][0], spec.active.spans[-1][1]
        prior_any[slot] = fitted[slot] if spec.prior_record_ms is None else spec.prior_record_ms
        prior_fix[slot] = fitted[slot] if spec.prior_fix_ms is None else spec.prior_fix_ms
        limit[slot] = int((spec.reporting_interval_s + params.communication_buffer_seconds) * 1000)
    until = np.minimum(horizon_ms, removed)
    slots = np.array(watched, np.int64)
    # Fixes by slot: the fixes of allocations evaluated, in (slot, t, record) order.
    known, fix_slot = _slots_of(observed.allocation_ids, fixes.allocation_id)
    fix_t, fix_id = fixes.t_ms[known], fixes.record_id[known]
    obs_slot, obs_t, obs_id = observed.slot, observed.rows.t_ms, observed.rows.record_id
    watched_slot = np.zeros(n, np.bool_)
    watched_slot[slots] = True

    def inside(slot: I64, t: I64) -> Bools:
        return watched_slot[slot] & (t >= fitted[slot]) & (t < removed[slot])

    keep = inside(obs_slot, obs_t)
    obs_slot, obs_t, obs_id = obs_slot[keep], obs_t[keep], obs_id[keep]
    keep = inside(fix_slot, fix_t)
    fix_slot, fix_t, fix_id = fix_slot[keep], fix_t[keep], fix_id[keep]
    all_slot = np.concatenate((fix_slot, obs_slot))
    all_t = np.concatenate((fix_t, obs_t))
    all_id = np.concatenate((fix_id, obs_id))
    findings = _gaps(
        "device.loss_of_communication",
        allocations,
        slots,
        all_slot,
        all_t,
        all_id,
        prior_any,
        limit,
        until,
        removed,
        None,
    )
    gps = np.array([s for s in watched if allocations[s].location_source == "gps"], np.int64)
    if gps.shape[0]:
        # Still in (slot, t, record) order, as `_Observed` holds them.
        others = (obs_slot, obs_t, obs_id)
        location_limit = np.full(n, int(params.loss_of_location_seconds * 1000), np.int64)
        findings += _gaps(
            "device.loss_of_location",
            allocations,
            gps,
            fix_slot,
            fix_t,
            fix_id,
            prior_fix,
            location_limit,
            until,
            removed,
            others,
        )
    return findings


def _gaps(
    rule_id: str,
    allocations: Sequence[AllocationSpec],
    slots: I64,
    slot: I64,
    t: I64,
    ids: I64,
    prior_ms: I64,
    limit_ms: I64,
    until_ms: I64,
    removed_ms: I64,
    others: tuple[I64, I64, I64] | None,
) -> list[Finding]:
    """Per slot in `slots`: gaps longer than its limit between successive record times (from
    its prior record, and to `until_ms`, open when that is before removal).

    With `others` (slot, times, ids, sorted) a gap counts only when other records arrived
    during it after the limit passed: data flowing without this kind of record.
    """
    chosen = np.zeros(prior_ms.shape[0], np.bool_)
    chosen[slots] = True
    keep = chosen[slot]
    slot, t, ids = slot[keep], t[keep], ids[keep]
    order = np.lexsort((ids, t, slot))
    slot, t, ids = slot[order], t[order], ids[order]
    # Each record ends the gap from the one before it (or from the prior record); each
    # slot's last gap runs from its last record to `until_ms`.
    first = np.ones(slot.shape[0], np.bool_)
    first[1:] = slot[1:] != slot[:-1]
    prev = np.maximum(np.arange(slot.shape[0]) - 1, 0)
    start = np.where(first, prior_ms[slot], t[prev])
    start_id = np.where(first, 0, ids[prev])
    last = np.searchsorted(slot, slots, "right") - 1
    has = np.zeros(slots.shape[0], np.bool_)
    tail_start = prior_ms[slots]
    tail_id = np.zeros(slots.shape[0], np.int64)
    if slot.shape[0]:
        safe = np.maximum(last, 0)
        has = (last >= 0) & (slot[safe] == slots)
        tail_start = np.where(has, t[safe], tail_start)
        tail_id = np.where(has, ids[safe], 0)
    gap_slot = np.concatenate((slot, slots))
    gap_start = np.concatenate((start, tail_start))
    gap_start_id = np.concatenate((start_id, tail_id))
    gap_end = np.concatenate((t, until_ms[slots]))
    gap_end_id = np.concatenate((ids, np.zeros(slots.shape[0], np.int64)))
    is_open = np.concatenate((np.zeros(t.shape[0], np.bool_), until_ms[slots] < removed_ms[slots]))
    has_start = np.concatenate((~first, has))
    has_end = np.concatenate((np.ones(t.shape[0], np.bool_), np.zeros(slots.shape[0], np.bool_)))
    chosen_gaps = np.flatnonzero((gap_end - gap_start) > limit_ms[gap_slot])
    lo = hi = np.zeros(chosen_gaps.shape[0], np.int64)
    other_id = _empty_i64()
    if others is not None:
        # Other records strictly inside (start + limit, end) of each long gap: one search of
        # them packed by (slot, time) for all the gaps at once.
        other_slot, other_t, other_id = others
        base = int(other_t.min()) - 1 if other_t.shape[0] else 0
        packed = other_slot * _SPAN + (other_t - base)
        owner = gap_slot[chosen_gaps] * _SPAN
        after = gap_start[chosen_gaps] + limit_ms[gap_slot[chosen_gaps]] - base
        lo = np.searchsorted(packed, owner + np.clip(after, -1, _SPAN - 1), "right")
        before = gap_end[chosen_gaps] - base
        hi = np.searchsorted(packed, owner + np.clip(before, -1, _SPAN - 1), "left")
        flowing = hi > lo
        chosen_gaps, lo, hi = chosen_gaps[flowing], lo[flowing], hi[flowing]
    rule = RULES[rule_id]
    out: list[Finding] = []
    for i, first_other, end_other, start, start_id, end, end_id, open_, slot_i in zip(
        chosen_gaps.tolist(),
        lo.tolist(),
        hi.tolist(),
        gap_start[chosen_gaps].tolist(),
        gap_start_id[chosen_gaps].tolist(),
        gap_end[chosen_gaps].tolist(),
        gap_end_id[chosen_gaps].tolist(),
        is_open[chosen_gaps].tolist(),
        gap_slot[chosen_gaps].tolist(),
        strict=True,
    ):
        evidence = [start_id] if has_start[i] else []
        if has_end[i]:
            evidence.append(end_id)
        if others is not None:
            evidence += other_id[first_other:end_other].tolist()
        out.append(
            Finding(
                allocations[slot_i].allocation_id,
                rule_id,
                rule.version,
                None,
                start,
                None if open_ else end,
                "confirmed",
                tuple(sorted(set(evidence))),
            )
        )
    return out


# --- the entry point -------------------------------------------------------------------------


def evaluate(
    allocations: Sequence[AllocationSpec],
    fixes: Fixes,
    params: RuleParams,
    horizon_ms: int,
    *,
    observations: Observations | None = None,
    gap_rules: bool = True,
) -> list[Finding]:
    """Every finding for the allocations given (each allocation id once), sorted by natural
    key.

    `fixes` holds the GPS fixes of these allocations sorted by (allocation, time, record);
    `observations` their other records (by default, those in each spec's `observations`);
    `horizon_ms` is the moment evaluated at: an episode still running then is open.
    """
    if observations is None:
        observations = Observations.of(
            (spec.allocation_id, o) for spec in allocations for o in spec.observations
        )
    findings, presence = _geofence_findings(allocations, fixes, params, horizon_ms)
    observed = _Observed.of(allocations, observations)
    findings += _device_state_findings(observed, params, horizon_ms)
    findings += _checkin_findings(observed)
    findings += _rf_findings(allocations, observed, params, horizon_ms)
    rf_states = _rf_states(observed)
    no_rf = (_empty_i64(), np.empty(0, np.bool_))
    for slot, spec in enumerate(allocations):
        if spec.location_source != "none" and spec.curfews:
            findings += _no_presence_findings(
                spec, params, horizon_ms, presence.get(slot, {}), rf_states.get(slot, no_rf)
            )
    if gap_rules:
        findings += _gap_findings(allocations, fixes, observed, params, horizon_ms)
    unique = {f.key: f for f in findings}
    return [unique[key] for key in sorted(unique)]
