"""Order files: round trip, refusal with every error, idempotent re-import, new versions."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagwatch.cases import orderfile, samples
from tagwatch.cases.models import Allocation, Order, OrderVersion, Person
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.cases.validation import ValidationFailed


def export_text(session: Session) -> str:
    return orderfile.dumps(orderfile.export_document(session))


def counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(m)) or 0
        for m in (Person, Order, OrderVersion, Allocation)
    )


def clear(session: Session) -> None:
    for person in session.scalars(select(Person)):
        session.delete(person)
    session.flush()


def test_export_import_export_is_byte_identical(seeded: Session) -> None:
    orderfile.import_document(seeded, samples.document(3))
    first = export_text(seeded)
    clear(seeded)
    assert json.loads(export_text(seeded))["people"] == []
    orderfile.import_document(seeded, json.loads(first))
    assert export_text(seeded) == first
    assert first.endswith("\n") and '"format": "tagwatch-orders"' in first


def test_importing_the_same_file_twice_changes_nothing(seeded: Session) -> None:
    document = samples.document(2)
    result = orderfile.import_document(seeded, document)
    assert (result.people_added, result.orders_added, result.devices_added) == (2, 2, 2)
    before, text = counts(seeded), export_text(seeded)
    again = orderfile.import_document(seeded, copy.deepcopy(document))
    assert not again.changed_anything
    assert counts(seeded) == before and export_text(seeded) == text


def test_a_changed_order_becomes_a_new_version_with_reason_import(seeded: Session) -> None:
    document = samples.document(1)
    orderfile.import_document(seeded, document)
    order = document["people"][0]["orders"][0]
    order["end_date"] = "2030-09-01"
    order["conditions"][0]["timetable"][0]["end"] = "06:00"
    result = orderfile.import_document(seeded, document)
    assert result.orders_changed == 1
    history = json.loads(export_text(seeded))["people"][0]["orders"][0]["history"]
    assert [v["reason"] for v in history] == ["import", "import"]
    assert history[1]["version"] == 2 and history[1]["by"] == "import"
    assert any(c.startswith("end_date: 2030-07-08 -> 2030-09-01") for c in history[1]["changes"])
    assert any("timetable" in c for c in history[1]["changes"])


def test_a_bad_file_is_refused_whole_with_every_error_and_its_path(seeded: Session) -> None:
    document = samples.document(4)
    people: list[dict[str, Any]] = document["people"]
    people[0]["identifiers"]["pnc"] = "2001/0000001Z"
    people[1]["addresses"][0]["postcode"] = "NOT A CODE"
    curfew = people[3]["orders"][0]["conditions"][0]
    curfew["timetable"].append({"day": "monday", "start": "06:00", "end": "08:00"})
    people[2]["orders"][0]["conditions"][1]["geometry"] = samples.square(2.35, 48.85)
    people[2]["orders"][0]["region"] = "XX"
    with pytest.raises(ValidationFailed) as refused:
        orderfile.import_document(seeded, document)
    errors = refused.value.errors
    assert "people[0].identifiers.pnc: PNC check letter is wrong (expected Q)" in errors
    assert any(e.startswith("people[1].addresses[0].postcode: ") for e in errors)
    assert any(e.startswith("people[2].orders[0].region: ") for e in errors)
    assert any(
        e.startswith("people[2].orders[0].conditions[1].geometry.coordinates: ") for e in errors
    )
    assert (
        "people[3].orders[0].conditions[0].timetable[7].start: period overlaps sunday 19:00-07:00"
        in errors
    )
    assert counts(seeded) == (0, 0, 0, 0)


def test_overlapping_allocations_and_duplicate_identifiers_are_refused(seeded: Session) -> None:
    document = samples.document(2)
    second = document["people"][1]
    second["orders"][0]["allocations"][0]["device"] = document["devices"][0]["serial"]
    second["identifiers"]["crn"] = document["people"][0]["identifiers"]["crn"]
    with pytest.raises(ValidationFailed) as refused:
        orderfile.import_document(seeded, document)
    errors = refused.value.errors
    assert any(e.startswith("people[1].identifiers.crn: ") and "people[0]" in e for e in errors)
    # identifier errors stop the person before the overlap check; fix and check the overlap
    second["identifiers"]["crn"] = "Y999999"
    with pytest.raises(ValidationFailed) as refused:
        orderfile.import_document(seeded, document)
    assert any(
        e.startswith("people[1].orders[0].allocations[0]: device") for e in refused.value.errors
    )


def test_an_active_curfew_needs_both_safeguarding_checks(seeded: Session) -> None:
    document = samples.document(1)
    curfew = document["people"][0]["orders"][0]["conditions"][0]
    curfew["safeguarding_checks"] = curfew["safeguarding_checks"][:1]
    with pytest.raises(ValidationFailed) as refused:
        orderfile.import_document(seeded, document)
    assert refused.value.errors == [
        "people[0].orders[0].conditions[0]: an active order cannot have this curfew: "
        "the curfew address lacks a child safeguarding check"
    ]


def test_not_json_and_wrong_format_are_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        orderfile.load("{not json")
    assert refused.value.errors[0].startswith("line 1 column 2: not valid JSON")


names = st.text(st.characters(whitelist_categories=("L",), whitelist_characters="'- "), min_size=1,
                max_size=12).filter(lambda s: s.strip())  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 3))
    first = draw(st.integers(1, 9000))
    document = samples.document(count, first)
    for person in document["people"]:
        person["names"][0]["given"] = draw(names).strip()
        person["names"].append(
            {"kind": "alias", "given": draw(names).strip(), "family": draw(names).strip(),
             "middle": draw(st.none() | names.map(str.strip))}
        )  # fmt: skip
        person["restricted"] = draw(st.booleans())
        person["ethnicity"] = draw(st.sampled_from(["A1", "W3", "NR", "NS", "O1"]))
        order = person["orders"][0]
        order["status"] = draw(st.sampled_from(["draft", "active", "suspended", "ended"]))
        order["end_reason"] = "completed" if order["status"] == "ended" else None
        hours = draw(st.integers(2, 16))
        order["conditions"][0]["timetable"] = [
            {"day": d, "start": "20:00", "end": f"{(20 + hours) % 24:02d}:00"}
            for d in draw(st.sets(st.sampled_from(["monday", "wednesday", "saturday"]), min_size=1))
        ]
        if draw(st.booleans()):
            order["conditions"][0]["release_day"] = {"date": order["start_date"], "start": "15:00",
                                                     "end": "09:00"}  # fmt: skip
            order["conditions"][1]["schedule"] = [
                {"day": "friday", "start": "22:00", "end": "02:00"}
            ]
        if draw(st.booleans()):
            order["conditions"].append(
                {"type": "attendance", "start": "2030-01-07T09:00:00Z", "end": None,
                 "appointments": [{"name": "Drug testing", "lat": 51.5, "lon": -0.12,
                                   "radius_m": draw(st.floats(10, 500)),
                                   "start": "2030-01-08T10:00:00+00:00",
                                   "end": "2030-01-08T11:00:00Z"}]}
            )  # fmt: skip
            order["conditions"].append(
                {"type": draw(st.sampled_from(["trail_monitoring", "alcohol_abstinence"])),
                 "start": "2030-01-07T09:00:00Z", "end": "2030-03-07T09:00:00.250000Z"}
            )  # fmt: skip
        if draw(st.booleans()):
            lon, lat = person["addresses"][0]["lon"], person["addresses"][0]["lat"]
            radius = draw(st.floats(5, 2000))
            order["conditions"][1]["geometry"] = {"type": "Circle", "coordinates": [lon, lat],
                                                  "radius_m": radius}  # fmt: skip
    return document


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents())
def test_round_trip_holds_for_generated_documents(db: Session, document: dict[str, Any]) -> None:
    savepoint = db.begin_nested()
    try:
        seed_reference_data(db)
        orderfile.import_document(db, document)
        first = export_text(db)
        for person in db.scalars(select(Person)):
            db.delete(person)
        db.flush()
        orderfile.import_document(db, json.loads(first))
        assert export_text(db) == first
        assert not orderfile.import_document(db, json.loads(first)).changed_anything
    finally:
        savepoint.rollback()
