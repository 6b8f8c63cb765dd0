"""Curfew and zone rules of the kernel: confirmed and possible breaches, hysteresis, grace."""

from __future__ import annotations

import numpy as np
import shapely
from compliance_builders import HOUR, MINUTE, allocation, fixes
from hypothesis import given, settings
from hypothesis import strategies as st

from tagwatch.compliance.engine import (
    CurfewSpec,
    Fixes,
    Intervals,
    ZoneSpec,
    evaluate,
)
from tagwatch.compliance.rules import RuleParams

PARAMS = RuleParams()
SQUARE = shapely.box(0, 0, 1000, 1000)
FAR = (5000.0, 5000.0)
DEEP = (500.0, 500.0)


def zone_findings(rows, kind="exclusion", horizon=10 * HOUR, geometry=SQUARE, **zone_kwargs):
    zone = ZoneSpec(7, kind, geometry, **zone_kwargs)
    found = evaluate([allocation(zones=(zone,))], fixes(rows), PARAMS, horizon, gap_rules=False)
    return [f for f in found if f.rule_id.startswith("zone.")]


def track(*points, start=0, step=MINUTE, accuracy=5.0):
    return [(start + i * step, x, y, accuracy) for i, (x, y) in enumerate(points)]


def test_exclusion_entry_confirmed_by_consecutive_fixes():
    rows = track(FAR, DEEP, DEEP, DEEP, FAR)
    [finding] = zone_findings(rows)
    assert finding.rule_id == "zone.exclusion.entry"
    assert finding.status == "confirmed"
    assert (finding.start_ms, finding.end_ms) == (MINUTE, 4 * MINUTE)
    assert finding.evidence == (1001, 1002, 1003)
    assert finding.condition_id == 7


def test_two_fixes_in_breach_are_only_possible_until_the_duration_confirms():
    assert [f.status for f in zone_findings(track(FAR, DEEP, DEEP, FAR))] == ["possible"]
    slow = track(FAR, DEEP, DEEP, FAR, step=3 * MINUTE)
    assert [f.status for f in zone_findings(slow)] == ["confirmed"]


def test_a_fix_whose_accuracy_circle_straddles_the_boundary_is_possible_only():
    near_edge = (990.0, 500.0)  # 10 m inside the zone
    rows = [(0, *FAR, 5.0)] + [(i * MINUTE, *near_edge, 30.0) for i in range(1, 8)]
    rows.append((8 * MINUTE, *FAR, 5.0))
    [finding] = zone_findings(rows)
    assert finding.status == "possible"
    assert finding.end_ms == 8 * MINUTE


def test_exit_needs_a_fix_clear_of_the_boundary_by_the_margin():
    just_outside = (1008.0, 500.0)  # 8 m out, accuracy 5 m: within accuracy + margin
    rows = track(FAR, DEEP, DEEP, DEEP, just_outside, DEEP, FAR)
    [finding] = zone_findings(rows)
    assert (finding.start_ms, finding.end_ms) == (MINUTE, 6 * MINUTE)


def test_an_episode_with_no_clear_fix_is_open():
    [finding] = zone_findings(track(FAR, DEEP, DEEP, DEEP))
    assert finding.end_ms is None


def test_inclusion_zone_exit():
    rows = track(DEEP, FAR, FAR, FAR, DEEP)
    [finding] = zone_findings(rows, kind="inclusion")
    assert finding.rule_id == "zone.inclusion.exit"
    assert (finding.start_ms, finding.end_ms, finding.status) == (MINUTE, 4 * MINUTE, "confirmed")


def test_suspension_excuses_the_period_and_cuts_the_episode_at_its_start():
    rows = track(FAR, DEEP, DEEP, DEEP, DEEP, DEEP, DEEP, FAR)
    assert zone_findings(rows, suspended=Intervals.of([(0, 10 * MINUTE)])) == []
    [finding] = zone_findings(rows, suspended=Intervals.of([(4 * MINUTE, 10 * MINUTE)]))
    assert (finding.start_ms, finding.end_ms) == (MINUTE, 4 * MINUTE)


def test_scheduled_zone_applies_only_in_its_periods():
    rows = track(FAR, DEEP, DEEP, DEEP, DEEP, DEEP, FAR)
    [finding] = zone_findings(rows, schedule=Intervals.of([(3 * MINUTE, 20 * MINUTE)]))
    assert finding.start_ms == 3 * MINUTE


def test_two_zones_give_two_findings_for_one_track():
    zones = (
        ZoneSpec(1, "exclusion", SQUARE),
        ZoneSpec(2, "exclusion", shapely.box(400, 400, 600, 600)),
    )
    found = evaluate(
        [allocation(zones=zones)], fixes(track(FAR, DEEP, DEEP, DEEP, FAR)), PARAMS, HOUR
    )
    assert sorted(f.condition_id for f in found if f.rule_id == "zone.exclusion.entry") == [1, 2]


# --- curfew -------------------------------------------------------------------------------

HOME = (10_000.0, 10_000.0)
AWAY = (10_500.0, 10_000.0)


def curfew_findings(rows, periods, horizon=10 * HOUR, **kwargs):
    curfew = CurfewSpec(3, *HOME, Intervals.of(periods))
    spec = allocation(curfews=(curfew,), **kwargs)
    return evaluate([spec], fixes(rows), PARAMS, horizon, gap_rules=False)


def absences(found):
    return [f for f in found if f.rule_id == "curfew.absence.gps"]


def test_curfew_absence_longer_than_the_grace():
    rows = track(HOME, *[AWAY] * 10, HOME)
    [finding] = absences(curfew_findings(rows, [(0, HOUR)]))
    assert (finding.start_ms, finding.end_ms, finding.status) == (
        MINUTE,
        11 * MINUTE,
        "confirmed",
    )


def test_curfew_absence_within_the_grace_is_forgiven():
    rows = track(HOME, AWAY, AWAY, AWAY, HOME)
    assert absences(curfew_findings(rows, [(0, HOUR)])) == []


def test_curfew_absence_ends_with_the_period_and_is_open_before_it_ends():
    rows = track(HOME, *[AWAY] * 20)
    [closed] = absences(curfew_findings(rows, [(0, 15 * MINUTE)]))
    assert closed.end_ms == 15 * MINUTE
    [running] = absences(curfew_findings(rows, [(0, 2 * HOUR)], horizon=30 * MINUTE))
    assert running.end_ms is None


def test_curfew_crossing_midnight_is_one_period():
    evening = 23 * HOUR + 50 * MINUTE
    rows = track(HOME, *[AWAY] * 30, HOME, start=evening)
    [finding] = absences(curfew_findings(rows, [(19 * HOUR, 31 * HOUR)], horizon=40 * HOUR))
    assert finding.start_ms == evening + MINUTE
    assert finding.end_ms == evening + 31 * MINUTE


def test_authorised_absence_excuses_curfew():
    rows = track(HOME, *[AWAY] * 20, HOME)
    excused = Intervals.of([(0, 30 * MINUTE)])
    assert absences(curfew_findings(rows, [(0, HOUR)], absences=excused)) == []


def test_gps_drift_at_home_is_not_an_absence():
    drift = (10_060.0, 10_000.0)  # 10 m beyond a 50 m geofence with 40 m accuracy
    rows = [(i * MINUTE, *drift, 40.0) for i in range(30)]
    found = absences(curfew_findings(rows, [(0, HOUR)]))
    assert [f.status for f in found] == ["possible"]


def test_no_presence_fires_on_the_clock_without_any_record():
    period = [(2 * HOUR, 4 * HOUR)]
    found = curfew_findings([], period, horizon=2 * HOUR + 16 * MINUTE)
    [finding] = [f for f in found if f.rule_id == "curfew.no_presence"]
    assert (finding.start_ms, finding.end_ms) == (2 * HOUR, None)
    too_early = curfew_findings([], period, horizon=2 * HOUR + 10 * MINUTE)
    assert [f for f in too_early if f.rule_id == "curfew.no_presence"] == []


def test_presence_at_curfew_start_or_a_late_return_ends_no_presence():
    period = [(2 * HOUR, 4 * HOUR)]
    at_home = track(HOME, start=2 * HOUR + 5 * MINUTE)
    assert not [f for f in curfew_findings(at_home, period) if f.rule_id == "curfew.no_presence"]
    late = track(HOME, start=3 * HOUR)
    [finding] = [f for f in curfew_findings(late, period) if f.rule_id == "curfew.no_presence"]
    assert finding.end_ms == 3 * HOUR


# --- the vectorised distances agree with a per-fix Shapely reference -------------------------


def reference_codes(geometry, kind, xs, ys, accs, margin):
    codes = []
    for x, y, acc in zip(xs, ys, accs, strict=True):
        point = shapely.Point(x, y)
        inside = geometry.contains(point)
        dist = geometry.boundary.distance(point)
        d = dist if inside == (kind == "exclusion") else -dist
        codes.append(2 if d > acc else 1 if d > 0 else 0 if d >= -(acc + margin) else -1)
    return codes


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.floats(-300, 1300),
            st.floats(-300, 1300),
            st.floats(1, 80),
        ),
        min_size=1,
        max_size=30,
    ),
    kind=st.sampled_from(["exclusion", "inclusion"]),
)
def test_vectorised_classification_matches_per_fix_shapely(points, kind):
    from tagwatch.compliance import engine

    geometry = shapely.Polygon([(0, 0), (1000, 0), (1000, 700), (400, 1000), (0, 1000)])
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    accs = np.array([p[2] for p in points])
    rule = "zone.exclusion.entry" if kind == "exclusion" else "zone.inclusion.exit"
    target = engine._Target(0, rule, 1, Intervals.always(), geometry)
    counts = np.array([len(points)], np.int64)
    d = engine._signed_distances([target], counts, xs, ys, accs, PARAMS)
    codes = engine._classify(d, accs, PARAMS.exit_margin_m).tolist()
    assert codes == reference_codes(geometry, kind, xs, ys, accs, PARAMS.exit_margin_m)


def test_fixes_of_other_allocations_do_not_leak_between_people():
    zone = ZoneSpec(1, "exclusion", SQUARE)
    rows_a = track(DEEP, DEEP, DEEP)
    both = Fixes(
        *[
            np.concatenate([a, b])
            for a, b in zip(
                vars(fixes(rows_a, allocation_id=1)).values(),
                vars(fixes(track(FAR, FAR, FAR), allocation_id=2)).values(),
                strict=True,
            )
        ]
    ).sorted()
    specs = [allocation(allocation_id=1), allocation(allocation_id=2, zones=(zone,))]
    assert [f for f in evaluate(specs, both, PARAMS, HOUR) if f.rule_id.startswith("zone")] == []
