"""Zone geometry: GeoJSON Polygon/MultiPolygon or a Circle, checked and put on the national grid.

Areas and distances are measured in metres on EPSG:27700 (OSTN15), never in degrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from tagwatch.cases.postcodes import in_great_britain_xy
from tagwatch.geo.projection import to_bng

MIN_AREA_M2 = 10.0
MAX_AREA_M2 = 2_500_000_000.0
# Enough segments that a circle's area is within 0.1 % of pi r^2.
CIRCLE_QUAD_SEGMENTS = 32


def zones_bng(geometries: Sequence[Mapping[str, Any]]) -> list[BaseGeometry]:
    """Many zones on the national grid with one projection call (the per-call cost dominates)."""
    if not geometries:
        return []
    wgs84 = np.array(
        [Point(*g["coordinates"]) if g.get("type") == "Circle" else shape(g) for g in geometries],
        dtype=object,
    )
    coords = shapely.get_coordinates(wgs84)
    easting, northing = to_bng(coords[:, 0], coords[:, 1])
    projected = shapely.set_coordinates(wgs84.copy(), np.column_stack([easting, northing]))
    return [
        geom.buffer(float(g["radius_m"]), quad_segs=CIRCLE_QUAD_SEGMENTS)
        if g.get("type") == "Circle"
        else geom
        for g, geom in zip(geometries, projected, strict=True)
    ]


def zone_geometry_bng(geometry_json: Mapping[str, Any]) -> BaseGeometry:
    """The zone as a Shapely geometry in EPSG:27700 metres (a Circle becomes a buffered point)."""
    return zones_bng([geometry_json])[0]


def zone_problems(geometry_json: object) -> list[tuple[str | None, str]]:
    """Each (field, reason) that makes the zone unusable; empty when it is fine."""
    return zone_problems_many([geometry_json])[0]


def zone_problems_many(geometries: Sequence[object]) -> list[list[tuple[str | None, str]]]:
    """`zone_problems` for many zones, projecting them all at once."""
    problems = [_shape_problems(g) for g in geometries]
    sound = [i for i, found in enumerate(problems) if not found]
    projected = zones_bng([geometries[i] for i in sound])  # type: ignore[misc]
    for i, geom in zip(sound, projected, strict=True):
        field = "radius_m" if geometries[i]["type"] == "Circle" else None  # type: ignore[index]
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            problems[i] = [("coordinates", "the zone must lie within Great Britain")]
        else:
            problems[i] = [(field, reason) for _f, reason in _area_problems(geom.area)]
    return problems


def _shape_problems(geometry_json: object) -> list[tuple[str | None, str]]:
    """What is wrong with the zone's form and place, before measuring it."""
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
    return []


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
    if not isinstance(radius, int | float) or isinstance(radius, bool) or not 0 < radius < np.inf:
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
