"""Zone files, the curfew week and the violations chart, as the pages use them."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tagwatch.web.portal.charts import bar_chart_svg, bucket_by_day, bucket_violations
from tagwatch.web.portal.timetable import period_hours, week_hours, week_rows
from tagwatch.web.portal.zone_files import ZoneFileError, read_zone_file

SQUARE = [[-0.1, 51.5], [-0.09, 51.5], [-0.09, 51.51], [-0.1, 51.51], [-0.1, 51.5]]


def test_geojson_feature_collection_gives_its_first_polygon() -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 51]}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
        ],
    }
    geometry = read_zone_file("zone.geojson", json.dumps(document).encode())
    assert geometry == {"type": "Polygon", "coordinates": [SQUARE]}


def test_kml_polygon_with_a_hole_and_two_polygons() -> None:
    ring = " ".join(f"{lon},{lat},0" for lon, lat in SQUARE)
    polygon = (
        f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{ring}</coordinates>"
        f"</LinearRing></outerBoundaryIs><innerBoundaryIs><LinearRing><coordinates>{ring}"
        "</coordinates></LinearRing></innerBoundaryIs></Polygon>"
    )
    kml = f'<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark>{polygon}</Placemark></kml>'
    geometry = read_zone_file("zone.kml", kml.encode())
    assert geometry["type"] == "Polygon"
    assert geometry["coordinates"] == [SQUARE, SQUARE]
    two = f'<kml xmlns="http://www.opengis.net/kml/2.2"><MultiGeometry>{polygon}{polygon}</MultiGeometry></kml>'
    assert read_zone_file("zones.kml", two.encode())["type"] == "MultiPolygon"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.geojson", b"  ", "empty"),
        ("bad.geojson", b"{nope", "not valid GeoJSON"),
        ("point.geojson", b'{"type": "Point", "coordinates": [0, 51]}', "no Polygon"),
        ("bad.kml", b"<kml><Placemark>", "not valid KML"),
        (
            "bomb.kml",
            b'<!DOCTYPE x [<!ENTITY a "aaaa">]><kml>&a;</kml>',
            "not valid KML",
        ),
    ],
)
def test_unreadable_zone_files_are_refused_with_the_reason(
    name: str, content: bytes, reason: str
) -> None:
    with pytest.raises(ZoneFileError, match=reason):
        read_zone_file(name, content)


def test_curfew_week_counts_periods_past_midnight_to_their_day() -> None:
    rows = week_rows(
        [
            {"day": "monday", "start": "19:00", "end": "07:00"},
            {"day": "saturday", "start": "21:00", "end": "23:30"},
            {"day": "saturday", "start": "01:00", "end": "05:00"},
        ]
    )
    assert [r.day for r in rows][:2] == ["Monday", "Tuesday"]
    assert rows[0].periods == ["19:00 to 07:00 (next day)"] and rows[0].hours == 12
    assert rows[5].periods == ["01:00 to 05:00", "21:00 to 23:30"] and rows[5].hours == 6.5
    assert rows[1].periods == [] and rows[1].hours == 0
    assert week_hours(rows) == 18.5
    assert period_hours("00:00", "00:00") == 24


def test_violations_chart_buckets_by_uk_day_and_draws_one_bar_per_count() -> None:
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    items = [
        ("curfew_absence", dt.datetime(2026, 6, 1, 23, 30, tzinfo=dt.UTC)),  # 2 June in the UK
        ("curfew_absence", dt.datetime(2026, 6, 2, 8, tzinfo=dt.UTC)),
        ("exclusion_zone_entry", dt.datetime(2026, 6, 3, 8, tzinfo=dt.UTC)),
    ]
    buckets = bucket_violations(items, start, start + dt.timedelta(days=6))
    assert buckets.labels[:3] == ["1 Jun", "2 Jun", "3 Jun"]
    assert buckets.counts["curfew_absence"][:3] == [0, 2, 0]
    assert buckets.totals[:3] == [0, 2, 1]
    svg = str(bar_chart_svg(buckets))
    assert svg.count("<rect") == 2
    weekly = bucket_violations(items, start, start + dt.timedelta(days=90))
    assert weekly.totals[0] == 3


def test_day_counts_from_the_compliance_summary_fill_the_same_buckets() -> None:
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    buckets = bucket_by_day(
        {"2026-06-02": {"curfew.absence.gps": 2}, "2026-06-03": {"tamper.strap": 1}},
        start,
        start + dt.timedelta(days=6),
    )
    assert buckets.types == ["curfew.absence.gps", "tamper.strap"]
    assert buckets.totals[:4] == [0, 2, 1, 0]
