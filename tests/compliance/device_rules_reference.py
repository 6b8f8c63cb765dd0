"""The device rules as they were written per allocation, a record at a time: the reference
the kernel's vectorised rules (over all allocations at once, as columns) must agree with."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

import numpy as np

from tagwatch.compliance.engine import (
    BREACH,
    CLEAR,
    FOREVER,
    I64,
    POSSIBLE,
    UNSURE,
    AllocationSpec,
    Finding,
    Fixes,
    Intervals,
    Observation,
    Sighting,
    _apply_grace,
    _empty_i64,
    _episodes,
    _findings,
    _geofence_findings,
)
from tagwatch.compliance.rules import RULES, RuleParams


def _by_type(spec: AllocationSpec) -> Mapping[str, Sequence[Observation]]:
    grouped: dict[str, list[Observation]] = {}
    for observation in spec.observations:
        grouped.setdefault(observation.type, []).append(observation)
    return grouped


def _rf_states(spec: AllocationSpec) -> Sequence[tuple[int, int, bool]]:
    return sorted(
        (o.t_ms, o.record_id, o.fields.get("state") == "in_range")
        for o in _by_type(spec).get("rf", ())
        if o.fields.get("state") in ("in_range", "out_of_range")
    )


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
    status = _by_type(spec).get("status", ())
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
    readings = _by_type(spec).get("alcohol", ())
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
    for o in _by_type(spec).get("checkin", ()):
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
    rf = [(t, record, CLEAR if in_range else BREACH) for t, record, in_range in _rf_states(spec)]
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
    rf = sorted((t, in_range) for t, _, in_range in _rf_states(spec))
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


def evaluate_reference(
    allocations: Sequence[AllocationSpec],
    fixes: Fixes,
    params: RuleParams,
    horizon_ms: int,
    *,
    gap_rules: bool = True,
) -> list[Finding]:
    """`engine.evaluate` as it was: geofences across allocations, the rest one at a time."""
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
