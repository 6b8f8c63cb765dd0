"""The police crime CSV: every rule, the file statuses, and the awkward shapes files come in."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagwatch.crime.csvformat import (
    ERROR,
    FAILED,
    PARTIAL,
    SUCCESSFUL,
    parse_crime_csv,
)
from tagwatch.geo.projection import point_to_wgs84

GOOD_BNG = (
    "MPS,BIAD,Burglary,MPS20250101,01/1234/25,20250101100000,20250101120000,"
    "530000,180000,,,OSGB36,Front door forced"
)
GOOD_LL = "MPS,rb,Robbery,MPS20250101,01/1235/25,20250101100000,20250101100000,,,51.5,-0.12,WGS84,"


def parse(*lines: str, **kwargs: object) -> object:
    return parse_crime_csv(("\n".join(lines) + "\n").encode(), **kwargs)  # type: ignore[arg-type]


def row(**changes: str) -> str:
    fields = GOOD_BNG.split(",")
    names = [
        "force",
        "type",
        "desc",
        "batch",
        "ref",
        "from",
        "to",
        "e",
        "n",
        "lat",
        "lon",
        "datum",
        "text",
    ]
    for key, value in changes.items():
        fields[names.index(key)] = value
    return ",".join(fields)


def errors_of(line: str) -> set[tuple[str, str]]:
    batch = parse(GOOD_LL, line)
    return {(e.field, e.code) for e in batch.errors}  # type: ignore[attr-defined]


def test_good_rows_are_parsed_and_converted_with_ostn15() -> None:
    batch = parse(GOOD_BNG, GOOD_LL)
    assert batch.status == SUCCESSFUL
    assert batch.force_code == "MPS" and batch.batch_id == "MPS20250101"
    first, second = batch.rows
    assert first.crime_type == "BIAD"
    assert first.t_from == dt.datetime(2025, 1, 1, 10, tzinfo=dt.UTC)
    lon, lat = point_to_wgs84(530000, 180000)
    assert (first.longitude, first.latitude) == pytest.approx((lon, lat), abs=1e-9)
    assert first.location_source == "bng"
    assert second.crime_type == "RB"  # codes are case-insensitive
    assert second.location_source == "wgs84"
    assert 525_000 < second.easting < 535_000 and 175_000 < second.northing < 185_000
    assert second.t_from == second.t_to  # a zero-length window is accepted


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("MPS,RB,x,MPS20250101", {("columns", "INVALID_COLUMN_COUNT")}),
        (
            row(force=""),
            {("police_force", "INVALID_POLICE_FORCE")},
        ),
        (row(type="XX"), {("crime_type", "INVALID_CRIME_TYPE")}),
        (row(batch=""), {("batch_id", "MISSING_BATCH_ID")}),
        (row(batch="MPS2025"), {("batch_id", "INVALID_BATCH_ID_FORMAT")}),
        (row(batch="KNT20250101"), {("batch_id", "INVALID_BATCH_ID_FORMAT")}),
        (row(batch="MPS20250230"), {("batch_id", "INVALID_BATCH_ID_DATE")}),
        (row(ref="  "), {("crime_reference", "MISSING_CRIME_REFERENCE")}),
        (row(ref="x" * 101), {("crime_reference", "INVALID_TEXT")}),
        (row(**{"from": "2025-01-01"}), {("date_from", "INVALID_FROM_DATE_FORMAT")}),
        (row(to="20250132000000"), {("date_to", "INVALID_TO_DATE_FORMAT")}),
        (row(to="20250101095959"), {("date_to", "CRIME_DATE_TIME_TO_AFTER_FROM")}),
        (row(to="20250101220001"), {("date_to", "CRIME_DATE_TIME_EXCEEDS_WINDOW")}),
        (row(e="", n="", datum=""), {("location", "MISSING_LOCATION_DATA")}),
        (row(n=""), {("northing", "DEPENDENT_LOCATION_DATA")}),
        (row(lat="51.5", lon="-0.1"), {("location", "MULTIPLE_LOCATION_DATA_TYPES")}),
        (row(e="abc"), {("easting", "INVALID_NUMBER")}),
        (row(e="600001"), {("easting", "INVALID_LOCATION_DATA_RANGE")}),
        (row(n="-1"), {("northing", "INVALID_LOCATION_DATA_RANGE")}),
        (
            row(e="", n="", lat="61.6", lon="0", datum="WGS84"),
            {("latitude", "INVALID_LOCATION_DATA_RANGE")},
        ),
        (
            row(e="", n="", lat="51", lon="2.7", datum="WGS84"),
            {("longitude", "INVALID_LOCATION_DATA_RANGE")},
        ),
        (row(datum="WGS84"), {("datum", "INVALID_DATUM")}),
        (row(datum="ED50"), {("datum", "INVALID_DATUM")}),
        (row(ref="01/1235/25"), {("crime_reference", "DUPLICATE_CRIME_REFERENCE")}),
    ],
)
def test_each_rule_names_the_field_and_reason(line: str, expected: set[tuple[str, str]]) -> None:
    assert errors_of(line) == expected


def test_a_twelve_hour_window_exactly_is_accepted() -> None:
    assert errors_of(row(to="20250101220000")) == set()


def test_errors_carry_row_numbers_and_good_rows_are_kept() -> None:
    batch = parse(GOOD_BNG, row(ref="A", type="XX"), "", row(ref="B"), row(ref="C", e="x"))
    assert batch.status == PARTIAL
    assert [r.crime_ref for r in batch.rows] == ["01/1234/25", "B"]
    assert [(e.row, e.crime_reference) for e in batch.errors] == [(2, "A"), (5, "C")]
    assert batch.total_rows == 4 and batch.failed_rows == 2


def test_a_header_row_and_a_byte_order_mark_are_not_data() -> None:
    header = (
        "Police force,Crime type code,Crime type description,Batch ID,Crime reference,"
        "Date/time from,Date/time to,Easting,Northing,Latitude,Longitude,Datum,Free text"
    )
    batch = parse_crime_csv(("\ufeff" + header + "\r\n" + GOOD_BNG + "\r\n").encode())
    assert batch.status == SUCCESSFUL
    assert batch.header_skipped
    assert batch.total_rows == 1
    assert batch.rows[0].row == 2


@settings(max_examples=50, deadline=None)
@given(
    st.text(
        st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(',\n"\r'), max_size=3000
    )
)
def test_quoted_free_text_of_any_length_is_kept(text: str) -> None:
    quoted = '"' + text.replace('"', '""') + '"'
    batch = parse_crime_csv((row(text=quoted) + "\n").encode())
    assert batch.status == SUCCESSFUL
    assert batch.rows[0].free_text == text.strip()


def test_file_statuses() -> None:
    assert parse(GOOD_BNG).status == SUCCESSFUL
    assert parse(row(type="XX")).status == ERROR
    assert parse(row(type="XX")).rows == []
    assert parse(GOOD_BNG, row(force="KNT", batch="KNT20250101", ref="K1")).status == FAILED
    two = parse(GOOD_BNG, row(batch="MPS20250102", ref="X"))
    assert two.status == FAILED and two.rows == [] and "batch id" in two.file_errors[0]
    assert parse_crime_csv(b"").status == FAILED
    assert parse_crime_csv(b"\xff\xfe\x00").status == FAILED


def test_reference_codes_and_the_uploaders_force_are_enforced() -> None:
    batch = parse(GOOD_BNG, force_codes={"KNT"})
    assert {e.code for e in batch.errors} == {"INVALID_POLICE_FORCE"}
    batch = parse(GOOD_BNG, expected_force="KNT")
    assert batch.status == ERROR
    assert "KNT" in batch.errors[0].reason
    batch = parse(GOOD_BNG, crime_types={"RB"})
    assert {e.code for e in batch.errors} == {"INVALID_CRIME_TYPE"}
