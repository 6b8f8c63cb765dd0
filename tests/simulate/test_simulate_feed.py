from __future__ import annotations

import datetime as dt
import math
import re
import tracemalloc
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, shape

from tagwatch.geo.projection import to_bng
from tagwatch.simulate.cohort import FAULTY_BATCH, generate_cohort
from tagwatch.simulate.devices import simulate_feed
from tagwatch.telemetry.feed import Event, Fix, parse_object, parse_time_ms

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    return generate_cohort(260, 22, START.date())


@pytest.fixture(scope="module")
def run(cohort: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scenario: list[dict[str, Any]] = []
    records = list(simulate_feed(cohort, START, 1.0, 22, scenario))
    return records, scenario


def _ms(text: str) -> int:
    return parse_time_ms(text)


def _homes(cohort: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Home (curfew address, else first address) per device serial, in BNG metres."""
    out = {}
    for person in cohort["people"]:
        for order in person["orders"]:
            ref = next(
                (c["address_ref"] for c in order["conditions"] if c["type"] == "curfew"),
                person["addresses"][0]["ref"],
            )
            address = next(a for a in person["addresses"] if a["ref"] == ref)
            e, n = to_bng([address["lon"]], [address["lat"]])
            for allocation in order["allocations"]:
                out[allocation["device"]] = (float(e[0]), float(n[0]))
    return out


def test_same_seed_same_records_other_seed_other_records(cohort: dict[str, Any]) -> None:
    small = {**cohort, "people": cohort["people"][:20]}
    first = list(simulate_feed(small, START, 0.25, 5))
    assert first == list(simulate_feed(small, START, 0.25, 5))
    assert first != list(simulate_feed(small, START, 0.25, 6))


def test_every_record_is_valid_feed_v1(run: tuple[list, list]) -> None:
    records, _ = run
    assert len(records) > 100_000
    types = Counter()
    for record in records:
        parsed = parse_object(record)
        assert isinstance(parsed, (Fix, Event)), (record, parsed)
        assert "received" not in record  # set by a channel, never by a device
        assert RFC3339.fullmatch(record["time"])
        assert isinstance(record["seq"], int) and record["seq"] >= 1
        types[record["type"]] += 1
    assert set(types) == {"gps", "rf", "alcohol", "status", "checkin"}
    gps = [r for r in records if r["type"] == "gps"]
    assert all(51.0 < r["lat"] < 52.0 and -1.0 < r["lon"] < 0.6 for r in gps)


def test_duplicates_are_identical_retransmissions(run: tuple[list, list]) -> None:
    records, scenario = run
    by_key: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for record in records:
        by_key[(record["device"], record["seq"])].append(record)
    repeated = [group for group in by_key.values() if len(group) > 1]
    assert len(repeated) > 50
    assert all(all(r == group[0] for r in group) for group in repeated)
    assert len(repeated) == sum(1 for s in scenario if s["kind"] == "duplicate")
    # Apart from duplicates, a device's sequence numbers follow its observation times.
    per_device: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (device, seq), group in by_key.items():
        per_device[device].append((seq, _ms(group[0]["time"])))
    for pairs in per_device.values():
        pairs.sort()
        times = [t for _, t in pairs]
        assert times == sorted(times)


def test_late_uploads_arrive_after_newer_records(run: tuple[list, list]) -> None:
    records, scenario = run
    gaps = [s for s in scenario if s["kind"] == "coverage_gap"]
    assert gaps
    late = 0
    latest: dict[str, int] = {}
    for record in records:
        t = _ms(record["time"])
        if t < latest.get(record["device"], 0) - 60_000:
            late += 1
        latest[record["device"]] = max(t, latest.get(record["device"], 0))
    assert late > 100
    # A gap cut short by the end of a simulated day (04:00 UK time) or of the run is flushed
    # at that boundary; take one that ended with coverage returning mid-day.
    day_end = (START + dt.timedelta(days=1)).timestamp() * 1000
    mid_day = [g for g in gaps if "T04:00:00" not in g["end"] and _ms(g["end"]) < day_end]
    gap = max(mid_day, key=lambda g: _ms(g["end"]) - _ms(g["start"]))
    first_copies = {}
    for record in records:  # retransmissions come later still; look at first copies
        if record["device"] == gap["device"]:
            first_copies.setdefault(record["seq"], record)
    stream = list(first_copies.values())
    g0, g1 = _ms(gap["start"]), _ms(gap["end"])
    inside = [i for i, r in enumerate(stream) if g0 <= _ms(r["time"]) < g1]
    after = [i for i, r in enumerate(stream) if _ms(r["time"]) >= g1]
    assert len(inside) > 5 and after
    # The backlog goes newest first, and fresh fixes overtake its older end.
    backlog = [_ms(stream[i]["time"]) for i in inside]
    assert backlog == sorted(backlog, reverse=True)
    assert min(after) < max(inside)


def test_curfew_breaches_show_in_the_data(cohort: dict[str, Any], run: tuple[list, list]) -> None:
    records, scenario = run
    homes = _homes(cohort)
    absences = [s for s in scenario if s["kind"] == "curfew_absence"]
    assert absences
    checked = 0
    for absence in absences:
        a, b = _ms(absence["start"]), _ms(absence["end"])
        device = absence["device"]
        if device.startswith("GPS") and b - a > 10 * 60_000:
            fixes = [
                r
                for r in records
                if r["device"] == device and r["type"] == "gps" and a <= _ms(r["time"]) <= b
            ]
            e, n = to_bng([f["lon"] for f in fixes], [f["lat"] for f in fixes])
            far = np.hypot(e - homes[device][0], n - homes[device][1]) > 200
            assert far.mean() > 0.8
            # A broken rule makes the tag report every 15 s.
            gaps = np.diff(sorted({_ms(f["time"]) for f in fixes}))
            assert np.median(gaps) == 15_000
            checked += 1
        if device.startswith("RF"):
            states = [
                r["state"]
                for r in records
                if r["device"] == device and r["type"] == "rf" and _ms(r["time"]) <= a + 180_000
            ]
            assert states and states[-1] == "out_of_range"
            checked += 1
    assert checked


def test_exclusion_entries_show_in_the_data(cohort: dict[str, Any], run: tuple[list, list]) -> None:
    records, scenario = run
    zones = {}
    for person in cohort["people"]:
        for order in person["orders"]:
            for condition in order["conditions"]:
                if condition["type"] == "exclusion_zone":
                    for allocation in order["allocations"]:
                        zones[(allocation["device"], condition["name"])] = condition["geometry"]
    # Both the injected entries and paths that happened to cross a zone are ground truth.
    entries = [s for s in scenario if s["kind"] == "exclusion_entry"]
    assert any(s["detail"]["injected"] for s in entries)
    for entry in entries:
        geometry = zones[(entry["device"], entry["detail"]["zone"])]
        if geometry["type"] == "Circle":
            e, n = to_bng(*([c] for c in geometry["coordinates"]))
            zone = Point(e[0], n[0]).buffer(geometry["radius_m"])
        else:
            ring = np.asarray(shape(geometry).exterior.coords)
            e, n = to_bng(ring[:, 0], ring[:, 1])
            zone = shape({"type": "Polygon", "coordinates": [list(zip(e, n, strict=True))]})
        a, b = _ms(entry["start"]), _ms(entry["end"])
        fixes = [
            r
            for r in records
            if r["device"] == entry["device"] and r["type"] == "gps" and a <= _ms(r["time"]) <= b
        ]
        assert fixes
        e, n = to_bng([f["lon"] for f in fixes], [f["lat"] for f in fixes])
        near = [
            zone.distance(Point(x, y)) <= 3 * f["accuracy_m"]
            for x, y, f in zip(e, n, fixes, strict=True)
        ]
        assert np.mean(near) > 0.9


def test_accuracy_is_plausible_and_matches_the_noise(
    cohort: dict[str, Any], run: tuple[list, list]
) -> None:
    records, scenario = run
    gps = [r for r in records if r["type"] == "gps"]
    accuracy = np.array([r["accuracy_m"] for r in gps])
    assert accuracy.min() >= 2.0
    assert ((accuracy >= 2) & (accuracy <= 5)).mean() > 0.02  # open sky
    assert ((accuracy >= 10) & (accuracy <= 50)).mean() > 0.3  # buildings and indoors
    assert Counter(r["source"] for r in gps).keys() >= {"gnss", "wifi", "cell"}
    # At 02:00-03:30 people sleep at home: the reported accuracy is the 68% error radius.
    homes = _homes(cohort)
    night = (START + dt.timedelta(hours=2)).timestamp() * 1000
    busy = {s["device"] for s in scenario if s["kind"] == "curfew_absence"}
    sleepers = [
        r for r in gps if night <= _ms(r["time"]) < night + 90 * 60_000 and r["device"] not in busy
    ]
    e, n = to_bng([r["lon"] for r in sleepers], [r["lat"] for r in sleepers])
    home = np.array([homes[r["device"]] for r in sleepers])
    error = np.hypot(e - home[:, 0], n - home[:, 1])
    within = (error <= np.array([r["accuracy_m"] for r in sleepers])).mean()
    assert len(sleepers) > 2_000
    assert 0.6 < within < 0.76


def test_tampers_alcohol_rf_and_checkins(cohort: dict[str, Any], run: tuple[list, list]) -> None:
    records, scenario = run
    batches = {d["serial"]: d["batch"] for d in cohort["devices"]}
    opens = [r for r in records if r["type"] == "status" and r.get("strap") == "open"]
    assert opens and any(batches[r["device"]] == FAULTY_BATCH for r in opens)
    false = [s for s in scenario if s["kind"] == "tamper_false"]
    assert false and all(batches[s["device"]] == FAULTY_BATCH for s in false)

    alcohol = [r for r in records if r["type"] == "alcohol"]
    by_device: dict[str, list[int]] = defaultdict(list)
    for r in alcohol:
        by_device[r["device"]].append(_ms(r["time"]))
    for times in by_device.values():
        assert set(np.diff(sorted(set(times)))) <= {30 * 60_000}
    assert np.mean([r["tac_g_dl"] == 0.0 for r in alcohol]) > 0.8
    for episode in (s for s in scenario if s["kind"] == "drinking"):
        a, b = _ms(episode["start"]), _ms(episode["end"])
        readings = [
            r["tac_g_dl"]
            for r in alcohol
            if r["device"] == episode["device"] and a <= _ms(r["time"]) <= b
        ]
        if len(readings) >= 4:
            assert max(readings) > 0.015

    rf = [r for r in records if r["type"] == "rf"]
    assert {r["state"] for r in rf} == {"in_range", "out_of_range"}
    assert all(r["unit"].startswith("HMU") for r in rf)
    assert any(r["type"] == "checkin" for r in records)
    levels = [r["battery_pct"] for r in records if "battery_pct" in r]
    assert min(levels) < 60 and max(levels) == 100


def test_the_feed_streams_without_materialising_a_day(cohort: dict[str, Any]) -> None:
    tracemalloc.start()
    try:
        records = simulate_feed(cohort, START, 3650.0, 9)  # ten years, if it were built first
        first = [next(records) for _ in range(5_000)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 5_000
    assert peak < 30 * 2**20


def test_naive_start_is_refused(cohort: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="time zone"):
        next(simulate_feed(cohort, dt.datetime(2026, 11, 23), 1.0, 1))  # noqa: DTZ001


def test_start_time_does_not_change_what_happens(cohort: dict[str, Any]) -> None:
    # A day is drawn from (seed, wearer, date): a later start sees the same fixes.
    small = {**cohort, "people": cohort["people"][:15]}
    later = START + dt.timedelta(hours=6)
    key = lambda r: (r["device"], r["time"], r["type"])  # noqa: E731
    whole = {key(r): r for r in simulate_feed(small, START, 0.5, 3) if r["type"] == "gps"}
    part = {key(r): r for r in simulate_feed(small, later, 0.25, 3) if r["type"] == "gps"}
    shared = part.keys() & whole.keys()
    assert len(shared) > 0.95 * len(part) > 1_000
    for k in shared:
        assert math.isclose(whole[k]["lat"], part[k]["lat"])
        assert math.isclose(whole[k]["lon"], part[k]["lon"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.datetimes(
        dt.datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
        dt.datetime(2030, 12, 31),  # noqa: DTZ001
        timezones=st.just(dt.UTC),
    ),
)
def test_any_seed_and_start_yield_valid_records(seed: int, start: dt.datetime) -> None:
    # Any start, including across the clocks changing: every record valid, seq per device
    # in observation order, nothing outside the run.
    cohort = generate_cohort(8, seed, start.date())
    records = list(simulate_feed(cohort, start, 0.3, seed))
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        assert isinstance(parse_object(record), (Fix, Event)), record
        assert (
            start.timestamp() * 1000
            <= _ms(record["time"])
            < (start.timestamp() + 0.3 * 86_400) * 1000
        )
        assert first.setdefault((record["device"], record["seq"]), record) == record


def test_rf_tags_and_home_units_report_at_the_rule_sets_intervals(
    cohort: dict[str, Any], run: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    from tagwatch.compliance.rules import REPORTING_INTERVAL_SECONDS

    kinds = {d["serial"]: d["type"] for d in cohort["devices"]}
    times: dict[str, list[int]] = defaultdict(list)
    for record in run[0]:
        if kinds.get(record["device"]) in ("rf_tag", "home_monitoring_unit"):
            times[record["device"]].append(_ms(record["time"]))
    checked = Counter()
    for serial, seen in times.items():
        kind = kinds[serial]
        ordered = sorted(set(seen))
        widest = max(b - a for a, b in pairwise(ordered))
        assert widest <= REPORTING_INTERVAL_SECONDS[kind] * 1000, (serial, widest)
        checked[kind] += 1
    assert checked["rf_tag"] > 5 and checked["home_monitoring_unit"] > 5
