"""UK postcodes and positions within Great Britain."""

from __future__ import annotations

import re

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import Polygon, box

# The outward and inward code shapes Royal Mail allocates (plus the Girobank oddity).
_POSTCODE = re.compile(
    r"(GIR0AA|[A-PR-UWYZ](?:\d{1,2}|[A-HK-Y]\d[\dABEHMNPRV-Y]?|\d[A-HJKPS-UW])\d[ABD-HJLNP-UW-Z]{2})"
)

# Great Britain as a box less its neighbours inside that box (the island of Ireland, the Isle
# of Man, the French coast), in WGS84 degrees: cheap enough to check every position.
_GB_BOX = (-8.7, 49.85, 1.8, 60.9)
_NOT_GB = shapely.union_all(
    [
        Polygon(
            [(-11, 51.2), (-5.8, 51.2), (-5.8, 54.0), (-5.3, 54.35), (-5.35, 54.75),
             (-6.05, 55.45), (-11, 55.45)]
        ),
        box(-4.85, 54.04, -4.3, 54.42),
        Polygon([(0.9, 49.8), (1.9, 49.8), (1.9, 51.06), (1.5, 51.0), (1.3, 50.3)]),
    ]
)  # fmt: skip
shapely.prepare(_NOT_GB)


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code, or ValueError."""
    compact = re.sub(r"\s+", "", value).upper()
    if not _POSTCODE.fullmatch(compact):
        raise ValueError(f"{value!r} is not a valid UK postcode")
    return f"{compact[:-3]} {compact[-3:]}"


def in_great_britain_xy(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """For each WGS84 position, whether it lies in Great Britain (vectorised)."""
    lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    west, south, east, north = _GB_BOX
    inside = (lon_a >= west) & (lon_a <= east) & (lat_a >= south) & (lat_a <= north)
    in_gb: NDArray[np.bool_] = inside & ~shapely.contains_xy(_NOT_GB, lon_a, lat_a)
    return in_gb


def in_great_britain(lon: float, lat: float) -> bool:
    return bool(in_great_britain_xy([lon], [lat])[0])
