"""Device rules of the kernel: tamper, battery, home unit, alcohol, check-ins, RF, gaps."""

from __future__ import annotations

from compliance_builders import HOUR, MINUTE, allocation, fixes, observations

from tagwatch.compliance.engine import CurfewSpec, Fixes, Intervals, evaluate
from tagwatch.compliance.rules import RULES, RuleParams

PARAMS = RuleParams()


def run(rows, rule_prefix, horizon=10 * HOUR, fix_rows=(), gap_rules=False, **kwargs):
    spec = allocation(observations=observations(rows), **kwargs)
    found = evaluate(
        [spec],
        fixes(list(fix_rows)) if fix_rows else Fixes(),
        PARAMS,
        horizon,
        gap_rules=gap_rules,
    )
    return [f for f in found if f.rule_id.startswith(rule_prefix)]


def test_strap_tamper_is_confirmed_but_needs_human_review():
    rows = [
        (MINUTE, "status", {"strap": "ok"}),
        (2 * MINUTE, "status", {"strap": "open", "battery_pct": 80}),
        (3 * MINUTE, "status", {"battery_pct": 80}),
        (9 * MINUTE, "status", {"strap": "ok"}),
    ]
    [finding] = run(rows, "tamper.")
    assert (finding.rule_id, finding.start_ms, finding.end_ms) == (
        "tamper.strap",
        2 * MINUTE,
        9 * MINUTE,
    )
    assert finding.evidence == (5001,)
    assert RULES["tamper.strap"].needs_review
    assert not RULES["curfew.absence.gps"].needs_review


def test_body_and_case_tamper_are_separate_rules():
    rows = [(MINUTE, "status", {"body": "no_contact", "case": "opened"})]
    assert sorted(f.rule_id for f in run(rows, "tamper.")) == ["tamper.body", "tamper.case"]


def test_battery_low_uses_a_recovery_band_and_flat_is_separate():
    rows = [
        (MINUTE, "status", {"battery_pct": 50}),
        (2 * MINUTE, "status", {"battery_pct": 19}),
        (3 * MINUTE, "status", {"battery_pct": 22}),  # not yet recovered
        (4 * MINUTE, "status", {"battery_pct": 4}),
        (5 * MINUTE, "status", {"battery_pct": 30}),
    ]
    found = {f.rule_id: (f.start_ms, f.end_ms) for f in run(rows, "battery.")}
    assert found == {
        "battery.low": (2 * MINUTE, 5 * MINUTE),
        "battery.flat": (4 * MINUTE, 5 * MINUTE),
    }


def test_home_unit_power_loss_and_movement():
    rows = [
        (MINUTE, "status", {"unit_power": "off"}),
        (2 * MINUTE, "status", {"unit_moved": True}),
        (5 * MINUTE, "status", {"unit_power": "on", "unit_moved": False}),
    ]
    found = {f.rule_id: (f.start_ms, f.end_ms) for f in run(rows, "home_unit.")}
    assert found == {
        "home_unit.power_loss": (MINUTE, 5 * MINUTE),
        "home_unit.moved": (2 * MINUTE, 5 * MINUTE),
    }


def alcohol(t, tac, status="ok"):
    return (t, "alcohol", {"tac_g_dl": tac, "status": status})


def test_one_alcohol_sample_is_possible_and_sustained_readings_confirm():
    single = [alcohol(0, 0.0), alcohol(30 * MINUTE, 0.05), alcohol(60 * MINUTE, 0.0)]
    assert [f.status for f in run(single, "alcohol.detected")] == ["possible"]
    sustained = [alcohol(i * 30 * MINUTE, 0.05) for i in range(3)] + [alcohol(HOUR * 2, 0.0)]
    [finding] = run(sustained, "alcohol.detected")
    assert (finding.status, finding.start_ms, finding.end_ms) == ("confirmed", 0, 2 * HOUR)


def test_obstructed_readings_neither_confirm_nor_end_a_detection():
    rows = [
        alcohol(0, 0.05),
        alcohol(30 * MINUTE, 0.0, "obstructed"),
        alcohol(60 * MINUTE, 0.05),
        alcohol(90 * MINUTE, 0.05),
        alcohol(120 * MINUTE, 0.0),
    ]
    [detected] = run(rows, "alcohol.detected")
    assert detected.status == "possible"  # the obstruction breaks the run of three
    assert detected.end_ms == 120 * MINUTE
    [obstruction] = run(rows, "alcohol.obstruction")
    assert (obstruction.start_ms, obstruction.end_ms) == (30 * MINUTE, 60 * MINUTE)


def test_missed_and_failed_checkins():
    rows = [
        (MINUTE, "checkin", {"result": "success"}),
        (2 * MINUTE, "checkin", {"result": "missed"}),
        (3 * MINUTE, "checkin", {"result": "failed"}),
    ]
    found = {(f.rule_id, f.start_ms) for f in run(rows, "checkin.")}
    assert found == {("checkin.missed", 2 * MINUTE), ("checkin.failed", 3 * MINUTE)}


def rf(t, state):
    return (t, "rf", {"state": state, "unit": "HMU1"})


def rf_curfew(periods):
    return (CurfewSpec(3, 0.0, 0.0, Intervals.of(periods)),)


def test_rf_absence_during_curfew_with_state_carried_into_the_period():
    rows = [rf(HOUR, "out_of_range"), rf(3 * HOUR, "in_range")]
    [finding] = run(
        rows, "curfew.absence.rf", location_source="rf", curfews=rf_curfew([(2 * HOUR, 8 * HOUR)])
    )
    assert (finding.start_ms, finding.end_ms, finding.evidence) == (2 * HOUR, 3 * HOUR, (5000,))


def test_rf_absence_within_grace_is_forgiven():
    rows = [rf(HOUR, "out_of_range"), rf(HOUR + 2 * MINUTE, "in_range")]
    curfews = rf_curfew([(0, 8 * HOUR)])
    assert run(rows, "curfew.absence.rf", location_source="rf", curfews=curfews) == []


def test_loss_of_communication_is_a_gap_in_every_kind_of_record():
    fix_rows = [(i * MINUTE, 0.0, 0.0, 5.0) for i in range(5)]
    rows = [(60 * MINUTE, "status", {"battery_pct": 90})]
    [gap] = run(
        rows,
        "device.loss_of_communication",
        fix_rows=fix_rows,
        gap_rules=True,
        horizon=61 * MINUTE,
    )
    assert (gap.start_ms, gap.end_ms) == (4 * MINUTE, 60 * MINUTE)
    assert gap.evidence == (1004, 5000)
    [still] = run(
        [], "device.loss_of_communication", fix_rows=fix_rows, gap_rules=True, horizon=HOUR
    )
    assert (still.start_ms, still.end_ms) == (4 * MINUTE, None)


def test_loss_of_location_is_data_arriving_without_fixes():
    fix_rows = [(0, 0.0, 0.0, 5.0), (60 * MINUTE, 0.0, 0.0, 5.0)]
    rows = [(i * 5 * MINUTE, "status", {"battery_pct": 90}) for i in range(1, 12)]
    found = run(rows, "device.loss_", fix_rows=fix_rows, gap_rules=True, horizon=61 * MINUTE)
    assert [(f.rule_id, f.start_ms, f.end_ms) for f in found] == [
        ("device.loss_of_location", 0, 60 * MINUTE)
    ]


def test_gap_rules_stop_at_removal():
    spec_active = Intervals.of([(0, 30 * MINUTE)])
    fix_rows = [(0, 0.0, 0.0, 5.0)]
    found = run(
        [], "device.loss_of_communication", fix_rows=fix_rows, gap_rules=True, active=spec_active
    )
    assert [(f.start_ms, f.end_ms) for f in found] == [(0, 30 * MINUTE)]
    steady = [(t * MINUTE, 0.0, 0.0, 5.0) for t in (0, 10, 20, 29)]
    found = run([], "device.loss_", fix_rows=steady, gap_rules=True, active=spec_active)
    assert found == []
