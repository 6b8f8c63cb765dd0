"""Zone geometry: GeoJSON Polygon/MultiPolygon or a Circle, checked and put on the national grid.

Areas and distances are measured in metres on EPSG:27700 (OSTN15), never in degrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from tagwatch.cases.postcodes import in_great_britain_xy
from tagwatch.geo.projection import point_to_bng, to_bng

MIN_AREA_M2 = 10.0
MAX_AREA_M2 = 2_500_000_000.0
# Enough segments that a circle's area is within 0.1 % of pi r^2.
CIRCLE_QUAD_SEGMENTS = 32


def _project(coords: np.ndarray) -> np.ndarray:
    easting, northing = to_bng(coords[:, 0], coords[:, 1])
    return np.column_stack([easting, northing])


def zone_geometry_bng(geometry_json: Mapping[str, Any]) -> BaseGeometry:
    """The zone as a Shapely geometry in EPSG:27700 metres (a Circle becomes a buffered point)."""
    if geometry_json.get("type") == "Circle":
        lon, lat = geometry_json["coordinates"]
        easting, northing = point_to_bng(float(lon), float(lat))
        return Point(easting, northing).buffer(
            float(geometry_json["radius_m"]), quad_segs=CIRCLE_QUAD_SEGMENTS
        )
    return shapely.transform(shape(geometry_json), _project)


def zone_problems(geometry_json: object) -> list[tuple[str | None, str]]:
    """Each (field, reason) that makes the zone unusable; empty when it is fine."""
    if not isinstance(geometry_json, Mapping):
        return [(None, "must be a GeoJSON Polygon, MultiPolygon or a Circle")]
    kind = geometry_json.get("type")
    if kind == "Circle":
        return _circle_problems(geometry_json)
    if kind not in ("Polygon", "MultiPolygon"):
        return [("type", "must be Polygon, MultiPolygon or Circle")]
    try:
        wgs84 = shape(geometry_json)
    except Exception as exc:  # Shapely raises several types for malformed coordinates
        return [("coordinates", f"not a well-formed {kind}: {exc}")]
    if wgs84.is_empty:
        return [("coordinates", f"the {kind} is empty")]
    coords = shapely.get_coordinates(wgs84)
    if not np.isfinite(coords).all():
        return [("coordinates", "coordinates must be finite numbers")]
    if not shapely.is_valid(wgs84):
        return [("coordinates", f"not a valid {kind}: {explain_validity(wgs84)}")]
    if not in_great_britain_xy(coords[:, 0], coords[:, 1]).all():
        return [("coordinates", "the zone must lie within Great Britain")]
    projected = zone_geometry_bng(geometry_json)
    if not np.isfinite(shapely.get_coordinates(projected)).all():
        return [("coordinates", "the zone must lie within Great Britain")]
    return _area_problems(projected.area)


def _circle_problems(geometry_json: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    coords = geometry_json.get("coordinates")
    radius = geometry_json.get("radius_m")
    problems: list[tuple[str | None, str]] = []
    if (
        not isinstance(coords, list | tuple)
        or len(coords) != 2
        or not all(_is_number(c) for c in coords)
    ):
        problems.append(("coordinates", "a Circle's centre is [lon, lat]"))
    elif not in_great_britain_xy([coords[0]], [coords[1]])[0]:
        problems.append(("coordinates", "the centre must lie within Great Britain"))
    if not _is_number(radius) or not float(radius) > 0 or not np.isfinite(float(radius)):
        problems.append(("radius_m", "must be a positive number of metres"))
    if problems:
        return problems
    return [
        ("radius_m", reason) for _f, reason in _area_problems(zone_geometry_bng(geometry_json).area)
    ]


def _area_problems(area: float) -> list[tuple[str | None, str]]:
    if area < MIN_AREA_M2:
        return [(None, f"the zone's area is {area:.1f} m²; it must be at least 10 m²")]
    if area > MAX_AREA_M2:
        return [(None, f"the zone's area is {area / 1e6:.1f} km²; it must be at most 2,500 km²")]
    return []


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
