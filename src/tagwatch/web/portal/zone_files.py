"""An uploaded zone file (GeoJSON or KML) read into a zone geometry for the order form.

This only finds the geometry in the file; whether it is a valid zone (inside Great Britain,
not self-intersecting, a sensible area) is decided by the cases service, as for the API.
"""

from __future__ import annotations

import json
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

KML_NS = "{http://www.opengis.net/kml/2.2}"
GEOMETRY_TYPES = ("Polygon", "MultiPolygon", "Circle")


class ZoneFileError(ValueError):
    """The file holds no zone we can read; the message says why."""


def read_zone_file(filename: str, content: bytes) -> dict[str, Any]:
    if not content.strip():
        raise ZoneFileError("The selected file is empty")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ZoneFileError("The selected file must be UTF-8 text (GeoJSON or KML)") from error
    if filename.lower().endswith(".kml") or text.lstrip().startswith("<"):
        return _from_kml(text)
    return _from_geojson(text)


def _from_geojson(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ZoneFileError(f"The selected file is not valid GeoJSON: {error.msg}") from error
    items = (
        document.get("features", []) if document.get("type") == "FeatureCollection" else [document]
    )
    for item in items:
        geometry = item.get("geometry") if item.get("type") == "Feature" else item
        if isinstance(geometry, dict) and geometry.get("type") in GEOMETRY_TYPES:
            return geometry
    raise ZoneFileError("The selected file has no Polygon, MultiPolygon or Circle")


def _coordinates(text: str | None) -> list[list[float]]:
    ring: list[list[float]] = []
    for pair in (text or "").split():
        parts = pair.split(",")
        try:
            ring.append([float(parts[0]), float(parts[1])])
        except (IndexError, ValueError) as error:
            raise ZoneFileError(
                f"The KML has a coordinate that is not lon,lat: {pair!r}"
            ) from error
    return ring


def _from_kml(text: str) -> dict[str, Any]:
    try:
        root = ElementTree.fromstring(text)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise ZoneFileError(f"The selected file is not valid KML: {error}") from error
    namespace = KML_NS if root.tag.startswith(KML_NS) else ""
    polygons = []
    for polygon in root.iter(f"{namespace}Polygon"):
        rings = [
            _coordinates(node.text)
            for boundary in ("outerBoundaryIs", "innerBoundaryIs")
            for holder in polygon.iter(f"{namespace}{boundary}")
            for node in holder.iter(f"{namespace}coordinates")
        ]
        if rings:
            polygons.append(rings)
    if not polygons:
        raise ZoneFileError("The selected KML file has no Polygon")
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}
