"""The kernel's device rules run over all allocations at once, as columns; they must find
exactly what the per-allocation rules they replaced find (`device_rules_reference`), for any
mix of allocations, records, curfews, excused periods and priors."""

from __future__ import annotations

from typing import Any

import numpy as np
from device_rules_reference import evaluate_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagwatch.compliance.engine import (
    FOREVER,
    AllocationSpec,
    CurfewSpec,
    Fixes,
    Intervals,
    Observation,
    evaluate,
)
from tagwatch.compliance.rules import RuleParams

MINUTE = 60_000
HOUR = 60 * MINUTE
HORIZON = 12 * HOUR
PARAMS = RuleParams()

_STATUS_VALUES: dict[str, list[Any]] = {
    "strap": ["ok", "open"],
    "body": ["ok", "no_contact"],
    "case": ["ok", "opened"],
    "unit_power": ["on", "off"],
    "unit_moved": [False, True],
}


@st.composite
def payloads(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    if kind == "status":
        names = draw(st.sets(st.sampled_from([*_STATUS_VALUES, "battery_pct"]), max_size=3))
        fields: dict[str, Any] = {
            name: draw(st.sampled_from(_STATUS_VALUES[name])) for name in names - {"battery_pct"}
        }
        if "battery_pct" in names:
            fields["battery_pct"] = draw(st.integers(0, 100) | st.floats(0, 100))
        return fields
    if kind == "rf":
        return draw(st.sampled_from([{"state": "in_range"}, {"state": "out_of_range"}, {}]))
    if kind == "alcohol":
        fields = {}
        if draw(st.booleans()):
            fields["tac_g_dl"] = draw(st.sampled_from([0.0, 0.01, 0.02, 0.05]))
        if draw(st.integers(0, 4)):
            fields["status"] = draw(st.sampled_from(["ok", "ok", "obstructed", "tamper"]))
        return fields
    if kind == "checkin":
        return {"result": draw(st.sampled_from(["success", "failed", "missed"]))}
    return {}


def spans(max_spans: int) -> st.SearchStrategy[Intervals]:
    pair = st.tuples(st.integers(0, 14 * 60), st.integers(5, 6 * 60))
    return st.lists(pair, max_size=max_spans).map(
        lambda pairs: Intervals.of((s * MINUTE, (s + d) * MINUTE) for s, d in pairs)
    )


@st.composite
def allocations(draw: st.DrawFn, allocation_id: int, first_id: int) -> tuple[AllocationSpec, list]:
    source = draw(st.sampled_from(["gps", "rf", "none"]))
    fitted = draw(st.integers(0, 120)) * MINUTE
    removed = draw(st.none() | st.integers(60, 14 * 60).map(lambda m: fitted + m * MINUTE))
    curfews = tuple(
        CurfewSpec(100 + allocation_id * 10 + i, 0.0, 0.0, draw(spans(3)))
        for i in range(draw(st.integers(0, 2)))
    )
    times = st.integers(0, 13 * 60).map(lambda m: m * MINUTE)
    kinds = st.sampled_from(["rf", "rf", "status", "alcohol", "checkin", "note"])
    observations = []
    for i, (t, kind) in enumerate(draw(st.lists(st.tuples(times, kinds), max_size=30))):
        fields = draw(payloads(kind))
        observations.append(Observation(-(first_id + i), t, kind, fields))
    # The order the service loads them in: by time, then stored id (minus the record id).
    observations.sort(key=lambda o: (o.t_ms, -o.record_id))
    fixes = [
        (t, draw(st.sampled_from([(5.0, 5.0), (400.0, 300.0)])))
        for t in draw(st.lists(times, max_size=20, unique=True))
    ]
    prior = st.none() | st.integers(0, 60).map(lambda m: fitted + m * MINUTE)
    spec = AllocationSpec(
        allocation_id=allocation_id,
        active=Intervals.of([(fitted, FOREVER if removed is None else removed)]),
        location_source=source,
        reporting_interval_s=draw(st.sampled_from([60.0, 300.0, 900.0])),
        curfews=curfews,
        absences=draw(spans(1)),
        observations=tuple(observations),
        prior_record_ms=draw(prior),
        prior_fix_ms=draw(prior),
    )
    return spec, fixes


@st.composite
def cohorts(draw: st.DrawFn) -> tuple[list[AllocationSpec], Fixes]:
    count = draw(st.integers(1, 4))
    ids = draw(st.permutations(range(1, 7)))[:count]
    drawn = [draw(allocations(a, 1000 * (k + 1))) for k, a in enumerate(ids)]
    rows = [
        (spec.allocation_id, 10_000 * (k + 1) + i, t, x, y)
        for k, (spec, fixes) in enumerate(drawn)
        for i, (t, (x, y)) in enumerate(fixes)
    ]
    fixes = Fixes(
        allocation_id=np.array([r[0] for r in rows], np.int64),
        record_id=np.array([r[1] for r in rows], np.int64),
        t_ms=np.array([r[2] for r in rows], np.int64),
        x=np.array([r[3] for r in rows], np.float64),
        y=np.array([r[4] for r in rows], np.float64),
        accuracy_m=np.full(len(rows), 5.0),
    ).sorted()
    return [spec for spec, _ in drawn], fixes


# Default parameters mostly; sometimes others, thresholds in any order included.
rule_params = st.just(PARAMS) | st.builds(
    RuleParams,
    battery_low_pct=st.sampled_from([10.0, 20.0, 40.0]),
    battery_recovered_pct=st.sampled_from([15.0, 25.0, 50.0]),
    battery_flat_pct=st.sampled_from([5.0, 30.0]),
    alcohol_confirm_samples=st.integers(1, 4),
    curfew_grace_seconds=st.sampled_from([0.0, 300.0]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts(), st.integers(6 * 60, 14 * 60).map(lambda m: m * MINUTE), rule_params)
def test_vectorised_rules_find_what_the_per_allocation_rules_find(
    cohort: tuple[list[AllocationSpec], Fixes], horizon: int, params: RuleParams
) -> None:
    specs, fixes = cohort
    assert evaluate(specs, fixes, params, horizon) == evaluate_reference(
        specs, fixes, params, horizon
    )


def test_the_comparison_sees_device_findings() -> None:
    """The generated cohorts reach the device rules (a strap tamper here), so the property
    compares findings, not two empty lists."""
    spec = AllocationSpec(
        allocation_id=1,
        active=Intervals.of([(0, FOREVER)]),
        observations=(Observation(-1, MINUTE, "status", {"strap": "open"}),),
    )
    found = evaluate([spec], Fixes(), PARAMS, HOUR, gap_rules=False)
    assert [f.rule_id for f in found] == ["tamper.strap"]
    assert found == evaluate_reference([spec], Fixes(), PARAMS, HOUR, gap_rules=False)
