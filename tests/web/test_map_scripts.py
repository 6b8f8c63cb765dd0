"""The map scripts' own logic, run in Chromium: gaps, interpolation, drawn and uploaded zones."""

from __future__ import annotations

from typing import Any

MINUTE = 60_000


def _call(page: Any, module: str, expression: str) -> Any:
    page.goto("/")
    return page.evaluate(
        f"async () => {{ const m = await import('/static/js/{module}'); return {expression}; }}"
    )


def test_trail_is_split_where_fixes_are_more_than_ten_minutes_apart(page: Any) -> None:
    points = [
        [0, 51.5, -0.1, 5],
        [MINUTE, 51.5, -0.1, 5],
        [12 * MINUTE, 51.6, -0.1, 5],
        [22 * MINUTE, 51.7, -0.1, 5],
    ]
    runs = _call(page, "trail-player.js", f"m.splitAtGaps({points}, {10 * MINUTE})")
    assert [len(run) for run in runs] == [2, 2]


def test_position_is_interpolated_within_a_run_and_absent_in_a_gap(page: Any) -> None:
    points = [[0, 51.0, -1.0, 5], [2 * MINUTE, 51.2, -1.2, 15], [30 * MINUTE, 52.0, -1.0, 5]]
    gap = 10 * MINUTE
    middle = _call(page, "trail-player.js", f"m.positionAt({points}, {MINUTE}, {gap})")
    assert middle == [51.1, -1.1, 15] or all(
        abs(a - b) < 1e-9 for a, b in zip(middle, [51.1, -1.1, 15], strict=True)
    )
    assert _call(page, "trail-player.js", f"m.positionAt({points}, {15 * MINUTE}, {gap})") is None
    assert _call(page, "trail-player.js", f"m.positionAt({points}, -1, {gap})") is None
    assert _call(page, "trail-player.js", f"m.positionAt({points}, {30 * MINUTE}, {gap})") == [
        52.0,
        -1.0,
        5,
    ]


def test_drawn_polygon_is_closed_geojson_in_lon_lat_order(page: Any) -> None:
    geometry = _call(
        page, "zone-draw.js", "m.polygonGeometry([[51.5, -0.1], [51.5, -0.09], [51.51, -0.09]])"
    )
    assert geometry == {
        "type": "Polygon",
        "coordinates": [[[-0.1, 51.5], [-0.09, 51.5], [-0.09, 51.51], [-0.1, 51.5]]],
    }
    assert _call(page, "zone-draw.js", "m.polygonGeometry([[51.5, -0.1], [51.5, -0.09]])") is None
    circle = _call(page, "zone-draw.js", "m.circleGeometry([51.5, -0.1], 150)")
    assert circle == {"type": "Circle", "coordinates": [-0.1, 51.5], "radius_m": 150}


def test_uploaded_kml_is_read_in_the_browser(page: Any) -> None:
    kml = (
        '<kml xmlns=\\"http://www.opengis.net/kml/2.2\\"><Placemark><Polygon><outerBoundaryIs>'
        "<LinearRing><coordinates>-0.1,51.5,0 -0.09,51.5,0 -0.09,51.51,0 -0.1,51.5,0"
        "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>"
    )
    geometry = _call(page, "zone-draw.js", f'm.geometryFromKml("{kml}")')
    assert geometry["type"] == "Polygon"
    assert geometry["coordinates"][0][0] == [-0.1, 51.5]
