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
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
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

    @cached_property
    def by_type(self) -> Mapping[str, Sequence[Observation]]:
        """The observations of each type in the order given: grouped once, read by rules."""
        grouped: dict[str, list[Observation]] = {}
        for observation in self.observations:
            grouped.setdefault(observation.type, []).append(observation)
        return grouped

    @cached_property
    def rf_states(self) -> Sequence[tuple[int, int, bool]]:
        """(time, record id, in range) of the RF records with a known state, in that order."""
        return sorted(
            (o.t_ms, o.record_id, o.fields.get("state") == "in_range")
            for o in self.by_type.get("rf", ())
            if o.fields.get("state") in ("in_range", "out_of_range")
        )


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
                evidence=tuple(int(i) for i in ids),
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


def _pairs(fixes: Fixes, targets: Sequence[_Target], allocation_ids: I64) -> tuple[I64, I64, I64]:
    """(target index, fix index) for every fix of every target's allocation, and the count
    of pairs per target."""
    if not targets:
        return _empty_i64(), _empty_i64(), _empty_i64()
    alloc = allocation_ids[np.array([t.slot for t in targets], np.int64)]
    lo = np.searchsorted(fixes.allocation_id, alloc, "left")
    hi = np.searchsorted(fixes.allocation_id, alloc, "right")
    counts = hi - lo
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(targets), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    fix_index = np.arange(total, dtype=np.int64) - np.repeat(offsets - lo, counts)
    return owner, fix_index, counts


def _active_membership(
    targets: Sequence[_Target], owner: I64, t: I64, base: int
) -> tuple[I64, I64]:
    """Per pair: the global index of the active period containing it (-1: none) and its end."""
    starts: list[int] = []
    ends: list[int] = []
    for index, target in enumerate(targets):
        offset = index * _SPAN - base
        for start, end in target.active.spans:
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
    period, period_end = _active_membership(targets, owner, t, int(t.min()) - 1)
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


def _state_findings(
    spec: AllocationSpec,
    rule_id: str,
    coded: Sequence[tuple[int, int, int]],
    params_confirm: int,
    horizon_ms: int,
    active: Intervals | None = None,
    condition_id: int | None = None,
) -> list[Finding]:
    """Episodes of a device state from (t_ms, record_id, code) observations."""
    # Most states are healthy throughout: no episode can start, so no arrays are built.
    if not any(c >= POSSIBLE for _, _, c in coded):
        return []
    periods = active if active is not None else spec.active
    rows = sorted(coded)
    t = np.array([r[0] for r in rows], np.int64)
    record = np.array([r[1] for r in rows], np.int64)
    code = np.array([r[2] for r in rows], np.int8)
    starts = np.array([s for s, _ in periods.spans] or [0], np.int64)
    ends = np.array([e for _, e in periods.spans] or [0], np.int64)
    pos = np.searchsorted(starts, t, "right") - 1
    inside = (pos >= 0) & (t < ends[np.maximum(pos, 0)]) & bool(periods.spans)
    if not inside.any():
        return []
    t, record, code, pos = t[inside], record[inside], code[inside], pos[inside]
    episodes = _episodes(pos, t, code, ends[pos], horizon_ms, params_confirm, FOREVER)
    owner = np.zeros(t.shape[0], np.int64)
    return _findings(
        episodes, record, code, [spec.allocation_id], owner, rule_id, [condition_id], t
    )


_STATUS_RULES: tuple[tuple[str, str, str, str], ...] = (
    # (rule, field, bad value, good value)
    ("tamper.strap", "strap", "open", "ok"),
    ("tamper.body", "body", "no_contact", "ok"),
    ("tamper.case", "case", "opened", "ok"),
    ("home_unit.power_loss", "unit_power", "off", "on"),
)


def _status_findings(spec: AllocationSpec, params: RuleParams, horizon_ms: int) -> list[Finding]:
    status = spec.by_type.get("status", ())
    if not status:
        return []
    # One pass finds the states that ever go bad: only those can have an episode, so only
    # those are coded (most devices report healthy throughout).
    bad_fields: set[str] = set()
    lowest = math.inf
    for o in status:
        fields = o.fields
        for _, name, bad, _ in _STATUS_RULES:
            if fields.get(name) == bad:
                bad_fields.add(name)
        if fields.get("unit_moved") is True:
            bad_fields.add("unit_moved")
        pct = fields.get("battery_pct")
        if isinstance(pct, int | float) and pct < lowest:
            lowest = float(pct)
    findings: list[Finding] = []
    for rule_id, name, bad, good in _STATUS_RULES:
        if name not in bad_fields:
            continue
        coded = [
            (o.t_ms, o.record_id, BREACH if o.fields[name] == bad else CLEAR)
            for o in status
            if o.fields.get(name) in (bad, good)
        ]
        findings += _state_findings(spec, rule_id, coded, 1, horizon_ms)
    if "unit_moved" in bad_fields:
        moved = [
            (o.t_ms, o.record_id, BREACH if o.fields["unit_moved"] else CLEAR)
            for o in status
            if isinstance(o.fields.get("unit_moved"), bool)
        ]
        findings += _state_findings(spec, "home_unit.moved", moved, 1, horizon_ms)
    if lowest >= params.battery_low_pct and lowest > params.battery_flat_pct and lowest >= 0:
        return findings
    battery = [
        (o.t_ms, o.record_id, float(o.fields["battery_pct"]))
        for o in status
        if isinstance(o.fields.get("battery_pct"), int | float)
    ]

    def band(pct: float, low: float, recovered: float) -> int:
        return BREACH if pct < low else CLEAR if pct >= recovered else UNSURE

    low = [
        (t, r, band(p, params.battery_low_pct, params.battery_recovered_pct)) for t, r, p in battery
    ]
    flat = [
        (t, r, BREACH if p <= params.battery_flat_pct else band(p, 0.0, params.battery_low_pct))
        for t, r, p in battery
    ]
    findings += _state_findings(spec, "battery.low", low, 1, horizon_ms)
    findings += _state_findings(spec, "battery.flat", flat, 1, horizon_ms)
    return findings


def _alcohol_findings(spec: AllocationSpec, params: RuleParams, horizon_ms: int) -> list[Finding]:
    readings = spec.by_type.get("alcohol", ())
    if not readings:
        return []

    def detected(o: Observation) -> int:
        if o.fields.get("status", "ok") != "ok" or "tac_g_dl" not in o.fields:
            return UNSURE
        return BREACH if float(o.fields["tac_g_dl"]) >= params.alcohol_threshold_g_dl else CLEAR

    def state(o: Observation, bad: str) -> int:
        return BREACH if o.fields.get("status") == bad else CLEAR

    coded = [(o.t_ms, o.record_id, detected(o)) for o in readings]
    obstructed = [(o.t_ms, o.record_id, state(o, "obstructed")) for o in readings]
    tampered = [(o.t_ms, o.record_id, state(o, "tamper")) for o in readings]
    return (
        _state_findings(spec, "alcohol.detected", coded, params.alcohol_confirm_samples, horizon_ms)
        + _state_findings(spec, "alcohol.obstruction", obstructed, 1, horizon_ms)
        + _state_findings(spec, "alcohol.tamper", tampered, 1, horizon_ms)
    )


def _checkin_findings(spec: AllocationSpec) -> list[Finding]:
    out: list[Finding] = []
    for o in spec.by_type.get("checkin", ()):
        result = o.fields.get("result")
        if result in ("missed", "failed") and spec.active.contains(o.t_ms):
            rule_id = f"checkin.{result}"
            out.append(
                Finding(
                    spec.allocation_id,
                    rule_id,
                    RULES[rule_id].version,
                    None,
                    o.t_ms,
                    o.t_ms,
                    "confirmed",
                    (o.record_id,),
                )
            )
    return out


def _rf_findings(spec: AllocationSpec, params: RuleParams, horizon_ms: int) -> list[Finding]:
    """RF absence per curfew; the state at each period's start carries from before it."""
    if spec.location_source != "rf" or not spec.curfews:
        return []
    rf = [(t, record, CLEAR if in_range else BREACH) for t, record, in_range in spec.rf_states]
    if not rf:
        return []
    times = [r[0] for r in rf]
    findings: list[Finding] = []
    for curfew in spec.curfews:
        active = curfew.periods.intersect(spec.active).subtract(spec.absences)
        coded = list(rf)
        for start, _end in active.spans:
            before = bisect.bisect_left(times, start) - 1
            if before >= 0 and rf[before][2] == BREACH:
                coded.append((start, rf[before][1], BREACH))
        found = _state_findings(
            spec, "curfew.absence.rf", coded, 1, horizon_ms, active, curfew.condition_id
        )
        findings += _apply_grace(found, int(params.curfew_grace_seconds * 1000), horizon_ms)
    return findings


def _no_presence_findings(
    spec: AllocationSpec,
    params: RuleParams,
    horizon_ms: int,
    sightings: Mapping[int, Sighting],
) -> list[Finding]:
    """A curfew period that starts with nothing showing the person at home.

    Evidence of presence: a fix at the address between the start and the grace deadline,
    or the last fix in the look-back before the start at the address (GPS); the RF state at
    the deadline in range (RF). Once fired, the finding ends at the first evidence after it.
    """
    if spec.location_source == "none" or not spec.curfews:
        return []
    grace = int(params.presence_grace_seconds * 1000)
    lookback = int(params.presence_lookback_seconds * 1000)
    rf = sorted((t, in_range) for t, _, in_range in spec.rf_states)
    rf_times = [t for t, _ in rf]
    rule = RULES["curfew.no_presence"]
    out: list[Finding] = []
    for curfew in spec.curfews:
        if spec.location_source == "gps":
            t_all, home = sightings.get(curfew.condition_id, (_empty_i64(), np.empty(0, np.bool_)))
        else:
            t_all = np.array(rf_times, np.int64)
            home = np.array([h for _, h in rf], np.bool_)
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
                state_at = bisect.bisect_right(rf_times, deadline) - 1
                if state_at >= 0 and rf[state_at][1]:
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


def _gap_findings(
    spec: AllocationSpec,
    fix_t: I64,
    fix_ids: I64,
    params: RuleParams,
    horizon_ms: int,
) -> list[Finding]:
    """Loss of communication (no record at all) and of location (records but no fix)."""
    if not spec.active.spans:
        return []
    fitted = spec.active.spans[0][0]
    removed = spec.active.spans[-1][1]
    until = min(horizon_ms, removed)
    obs_t = np.array([o.t_ms for o in spec.observations], np.int64)
    obs_ids = np.array([o.record_id for o in spec.observations], np.int64)
    all_t = np.concatenate([fix_t, obs_t])
    all_ids = np.concatenate([fix_ids, obs_ids])
    order = np.lexsort((all_ids, all_t))
    all_t, all_ids = all_t[order], all_ids[order]
    inside = (all_t >= fitted) & (all_t < removed)
    all_t, all_ids = all_t[inside], all_ids[inside]
    findings = _gaps(
        spec,
        "device.loss_of_communication",
        all_t,
        all_ids,
        spec.prior_record_ms if spec.prior_record_ms is not None else fitted,
        int((spec.reporting_interval_s + params.communication_buffer_seconds) * 1000),
        until,
        None,
    )
    if spec.location_source == "gps":
        inside_fix = (fix_t >= fitted) & (fix_t < removed)
        obs_inside = (obs_t >= fitted) & (obs_t < removed)
        findings += _gaps(
            spec,
            "device.loss_of_location",
            fix_t[inside_fix],
            fix_ids[inside_fix],
            spec.prior_fix_ms if spec.prior_fix_ms is not None else fitted,
            int(params.loss_of_location_seconds * 1000),
            until,
            (np.sort(obs_t[obs_inside]), obs_ids[obs_inside][np.argsort(obs_t[obs_inside])]),
        )
    return findings


def _gaps(
    spec: AllocationSpec,
    rule_id: str,
    t: I64,
    ids: I64,
    prior_ms: int,
    limit_ms: int,
    until_ms: int,
    other: tuple[I64, I64] | None,
) -> list[Finding]:
    """Gaps longer than `limit_ms` between successive times (and to `until_ms`, open).

    With `other` (times, ids) a gap counts only when other records arrived during it after
    the limit passed: data flowing without this kind of record.
    """
    # np.concatenate, not np.r_: this runs for every allocation and np.r_ costs far more.
    starts = np.concatenate((np.array([prior_ms], np.int64), t))
    start_ids = np.concatenate((np.zeros(1, np.int64), ids))
    ends = np.append(t, np.int64(until_ms))
    is_open = np.zeros(starts.shape[0], np.bool_)
    # The last gap runs to the horizon, or ends at removal when the device came off before.
    is_open[-1] = until_ms < spec.active.spans[-1][1]
    long = (ends - starts) > limit_ms
    if other is not None:
        other_t = other[0]
        lo = np.searchsorted(other_t, starts + limit_ms, "right")
        hi = np.searchsorted(other_t, ends, "left")
        long &= hi > lo
    rule = RULES[rule_id]
    out: list[Finding] = []
    for i in np.flatnonzero(long).tolist():
        evidence = [int(start_ids[i])] if i > 0 else []
        if i < ids.shape[0]:
            evidence.append(int(ids[i]))
        if other is not None:
            lo_i = int(np.searchsorted(other[0], starts[i] + limit_ms, "right"))
            hi_i = int(np.searchsorted(other[0], ends[i], "left"))
            evidence += [int(v) for v in other[1][lo_i:hi_i]]
        out.append(
            Finding(
                spec.allocation_id,
                rule_id,
                rule.version,
                None,
                int(starts[i]),
                None if is_open[i] else int(ends[i]),
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
    gap_rules: bool = True,
) -> list[Finding]:
    """Every finding for the allocations given, sorted by natural key.

    `fixes` holds the GPS fixes of these allocations sorted by (allocation, time, record);
    `horizon_ms` is the moment evaluated at: an episode still running then is open.
    """
    findings, presence = _geofence_findings(allocations, fixes, params, horizon_ms)
    for slot, spec in enumerate(allocations):
        gps_presence = presence.get(slot, {})
        findings += _status_findings(spec, params, horizon_ms)
        findings += _alcohol_findings(spec, params, horizon_ms)
        findings += _checkin_findings(spec)
        findings += _rf_findings(spec, params, horizon_ms)
        findings += _no_presence_findings(spec, params, horizon_ms, gps_presence)
        if gap_rules:
            lo = int(np.searchsorted(fixes.allocation_id, spec.allocation_id, "left"))
            hi = int(np.searchsorted(fixes.allocation_id, spec.allocation_id, "right"))
            findings += _gap_findings(
                spec, fixes.t_ms[lo:hi], fixes.record_id[lo:hi], params, horizon_ms
            )
    unique = {f.key: f for f in findings}
    return [unique[key] for key in sorted(unique)]
