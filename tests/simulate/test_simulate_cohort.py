from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from cohort_rules import cohort_problems, pnc_is_valid, timetable_problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagwatch.simulate import identifiers
from tagwatch.simulate.cohort import generate_cohort

START = dt.date(2026, 11, 23)


def _bytes(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, ensure_ascii=False).encode()


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert _bytes(generate_cohort(60, 7, START)) == _bytes(generate_cohort(60, 7, START))
    assert _bytes(generate_cohort(60, 7, START)) != _bytes(generate_cohort(60, 8, START))


def test_every_record_keeps_the_order_format_rules() -> None:
    assert cohort_problems(generate_cohort(400, 11, START), START) == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    people=st.integers(1, 25),
    start=st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)),
)
def test_any_seed_yields_a_valid_cohort(seed: int, people: int, start: dt.date) -> None:
    document = generate_cohort(people, seed, start)
    assert len(document["people"]) == people
    assert cohort_problems(document, start) == []


def test_the_rule_checks_catch_breaches() -> None:
    # The checks above must be able to fail: break a few rules on purpose.
    document = generate_cohort(30, 3, START)
    person = document["people"][0]
    person["addresses"][0]["postcode"] = "E1 1CC"
    person["ref"] = document["people"][1]["ref"]
    order = person["orders"][0]
    order["end_date"] = order["start_date"]
    problems = cohort_problems(document, START)
    assert any("postcode" in p for p in problems)
    assert any("ref repeats" in p for p in problems)
    assert any("end before start" in p for p in problems)
    assert timetable_problems([{"day": "monday", "start": "08:00", "end": "06:00"}])
    assert timetable_problems(
        [
            {"day": "monday", "start": "19:00", "end": "07:00"},
            {"day": "tuesday", "start": "06:00", "end": "09:00"},
        ]
    )


def test_pnc_check_letter_follows_the_documented_rule() -> None:
    # 01 followed by 0123456 is 10123456, which is 6 modulo 23: F.
    assert identifiers.pnc(2001, 123456) == "2001/0123456F"
    assert pnc_is_valid(identifiers.pnc(1999, 7654321))
    assert not pnc_is_valid("2001/0123456Z")


def test_demographics_and_order_mix_look_like_a_london_caseload() -> None:
    document = generate_cohort(1000, 5, START)
    people = document["people"]
    sexes = Counter(p["sex"] for p in people)
    assert 0.82 < sexes["male"] / len(people) < 0.96
    ethnicities = Counter(p["ethnicity"] for p in people)
    assert ethnicities["NR"] > 0 and ethnicities["NS"] > 0
    assert len(ethnicities) >= 15
    nationalities = Counter(p["nationality"] for p in people)
    assert 0.55 < nationalities["GBR"] / len(people) < 0.9
    orders = [o for p in people for o in p["orders"]]
    statuses = Counter(o["status"] for o in orders)
    assert statuses["active"] > 0.75 * len(people)
    assert statuses["awaiting_fitting"] > 0 and statuses["ended"] > 0
    now = dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC)
    overdue = [
        o
        for o in orders
        if o["status"] == "awaiting_fitting"
        and dt.datetime.fromisoformat(o["fitting_deadline"].replace("Z", "+00:00")) < now
    ]
    assert overdue, "some orders should be past their fitting deadline"
    assert Counter(o["end_reason"] for o in orders if o["end_reason"]).keys() >= {
        "completed",
        "revoked",
    }
    bail = [p for p in people for o in p["orders"] if o["type"] == "immigration_bail"]
    assert bail and all(p["nationality"] != "GBR" for p in bail)
    active = [o for o in orders if o["status"] == "active"]
    kinds = Counter(
        next(d["type"] for d in document["devices"] if d["serial"] == a["device"])
        for o in active
        for a in o["allocations"]
    )
    share = {k: v / len(active) for k, v in kinds.items()}
    assert 0.4 < share["gps_tag"] < 0.6
    assert 0.25 < share["rf_tag"] < 0.45
    assert 0.12 < share["alcohol_tag"] < 0.25
    officers = {o["responsible_officer"] for o in orders}
    assert 15 <= len(officers) <= 25  # about people / 40
