"""Identifiers, postcodes, positions, zones and the order lifecycle: the rules themselves."""

from __future__ import annotations

import itertools

import pytest

from tagwatch.cases import identifiers, zones
from tagwatch.cases.lifecycle import (
    END_REASONS,
    STATUSES,
    IllegalTransition,
    allowed_transitions,
    check_transition,
)
from tagwatch.cases.postcodes import in_great_britain, normalise_postcode
from tagwatch.cases.samples import square


@pytest.mark.parametrize(
    ("key", "raw", "normalised"),
    [
        ("crn", "x123456", "X123456"),
        ("pnc", "2001/0123456F", "2001/0123456F"),
        ("pnc", "01/123456F", "2001/0123456F"),
        ("pnc", "99/1234567B", "1999/1234567B"),
        ("nomis", "a1234bc", "A1234BC"),
        ("prison_number", "AB1234", "AB1234"),
        ("prison_number", "1A2B3C", "1A2B3C"),
        ("home_office_ref", "B1234567", "B1234567"),
        ("home_office_ref", "123456789012", "123456789012"),
        ("home_office_ref", "1234-56", "1234-56"),
    ],
)
def test_valid_identifiers_normalise(key: str, raw: str, normalised: str) -> None:
    assert identifiers.VALIDATORS[key](raw) == normalised


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("crn", "1234567"),
        ("crn", "X12345"),
        ("pnc", "2001/0123456Z"),  # wrong check letter
        ("pnc", "2001/12345678F"),
        ("pnc", "201/0123456F"),
        ("nomis", "A12345C"),
        ("nomis", "AB234BC"),
        ("prison_number", "ABCDEF"),
        ("prison_number", "123456"),
        ("prison_number", "AB12345"),
        ("home_office_ref", "AB1234567"),
        ("home_office_ref", "1234567890123"),
        ("home_office_ref", "1234-567"),
    ],
)
def test_invalid_identifiers_are_refused(key: str, raw: str) -> None:
    with pytest.raises(ValueError):
        identifiers.VALIDATORS[key](raw)


def test_pnc_check_letter_is_year_and_serial_modulo_23() -> None:
    # 01 0123456 -> 10123456 % 23 == 6 -> F
    assert 10123456 % 23 == 6
    assert identifiers.pnc_check_letter("2001", "123456") == "F"
    assert (
        identifiers.pnc_check_letter("1999", "1234567")
        == identifiers.PNC_CHECK_LETTERS[991234567 % 23]
    )


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("sw1a2aa", "SW1A 2AA"), ("  EC1A  1BB ", "EC1A 1BB"), ("m11ae", "M1 1AE"),
     ("B33 8TH", "B33 8TH"), ("cr2 6xh", "CR2 6XH"), ("DN55 1PT", "DN55 1PT")],
)  # fmt: skip
def test_postcodes_normalise(raw: str, normalised: str) -> None:
    assert normalise_postcode(raw) == normalised


@pytest.mark.parametrize("raw", ["", "SW1A", "QW1 1AA", "SW1A 2CI", "12345", "SW1A 2AAA"])
def test_bad_postcodes_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_postcode(raw)


@pytest.mark.parametrize(
    ("lon", "lat", "inside"),
    [(-0.1276, 51.5072, True), (-3.19, 55.95, True), (-1.29, 60.3, True),
     (-3.18, 51.48, True), (-5.93, 54.6, False), (-6.26, 53.35, False),
     (-4.48, 54.15, False), (2.35, 48.86, False), (1.61, 50.73, False), (0.0, 0.0, False)],
)  # fmt: skip
def test_positions_in_great_britain(lon: float, lat: float, inside: bool) -> None:
    assert in_great_britain(lon, lat) is inside


def test_a_sound_zone_passes_and_its_area_is_measured_in_metres() -> None:
    zone = square(-0.1, 51.5, 0.001)
    assert zones.zone_problems(zone) == []
    area = zones.zone_geometry_bng(zone).area
    # 0.002 deg of latitude ~ 222 m, of longitude at 51.5 N ~ 139 m
    assert 28_000 < area < 34_000


def test_a_self_intersecting_zone_is_refused_with_shapelys_reason() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[-0.1, 51.5], [-0.09, 51.51], [-0.09, 51.5],
                                                   [-0.1, 51.51], [-0.1, 51.5]]]}  # fmt: skip
    [(field, reason)] = zones.zone_problems(bowtie)
    assert field == "coordinates" and "Self-intersection" in reason


def test_zones_outside_great_britain_or_of_silly_size_are_refused() -> None:
    paris = square(2.35, 48.85)
    assert "Great Britain" in zones.zone_problems(paris)[0][1]
    tiny = square(-0.1, 51.5, 0.00001)
    assert "at least 10 m²" in zones.zone_problems(tiny)[0][1]
    huge = square(-1.5, 53.0, 0.5)
    assert "at most 2,500 km²" in zones.zone_problems(huge)[0][1]
    assert zones.zone_problems({"type": "Point", "coordinates": [0, 51]})[0][0] == "type"


def test_circles_are_buffered_on_the_national_grid() -> None:
    circle = {"type": "Circle", "coordinates": [-0.1, 51.5], "radius_m": 100.0}
    assert zones.zone_problems(circle) == []
    assert zones.zone_geometry_bng(circle).area == pytest.approx(3.14159 * 100**2, rel=0.01)
    assert zones.zone_problems({**circle, "radius_m": 1.0})[0][0] == "radius_m"
    assert zones.zone_problems({**circle, "radius_m": -5})[0][0] == "radius_m"


def test_a_multipolygon_with_a_hole_is_valid_and_the_hole_is_not_area() -> None:
    outer = square(-0.1, 51.5, 0.002)["coordinates"][0]
    hole = list(reversed(square(-0.1, 51.5, 0.001)["coordinates"][0]))
    other = square(-0.05, 51.5, 0.001)["coordinates"]
    multi = {"type": "MultiPolygon", "coordinates": [[outer, hole], other]}
    assert zones.zone_problems(multi) == []
    full = zones.zone_geometry_bng(square(-0.1, 51.5, 0.002)).area
    inner = zones.zone_geometry_bng(square(-0.1, 51.5, 0.001)).area
    separate = zones.zone_geometry_bng(square(-0.05, 51.5, 0.001)).area
    assert zones.zone_geometry_bng(multi).area == pytest.approx(full - inner + separate, rel=1e-6)


LEGAL = {
    ("draft", "submitted", None),
    ("submitted", "awaiting_fitting", None),
    ("awaiting_fitting", "active", None),
    ("active", "suspended", None),
    ("suspended", "active", None),
    *(("draft", "ended", r) for r in ("revoked", "expired")),
    *(("submitted", "ended", r) for r in ("revoked", "expired")),
    *(("awaiting_fitting", "ended", r) for r in ("revoked", "expired")),
    *(("active", "ended", r) for r in END_REASONS),
    *(("suspended", "ended", r) for r in END_REASONS),
}


@pytest.mark.parametrize(
    ("current", "target", "reason"),
    list(itertools.product(STATUSES, STATUSES, (None, *END_REASONS))),
)
def test_every_transition_is_legal_exactly_when_the_lifecycle_says(
    current: str, target: str, reason: str | None
) -> None:
    if (current, target, reason) in LEGAL:
        check_transition(current, target, reason)
    else:
        with pytest.raises(IllegalTransition) as refused:
            check_transition(current, target, reason)
        assert str(refused.value)


def test_allowed_transitions_lists_the_legal_ones() -> None:
    listed = {(s, t, r) for s in STATUSES for t, r in allowed_transitions(s)}
    assert listed == LEGAL
