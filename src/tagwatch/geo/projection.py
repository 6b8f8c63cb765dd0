"""WGS84 <-> British National Grid (EPSG:27700) with the OSTN15 transformation.

Kernels work in metres on the national grid; the API speaks WGS84 degrees. convertbng
applies Ordnance Survey's OSTN15 grid (sub-metre), vectorised over NumPy arrays.
Points outside the OSTN15 area come back as NaN.
"""

from __future__ import annotations

import numpy as np
from convertbng.cutil import convert_bng, convert_lonlat
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def to_bng(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Longitudes and latitudes (WGS84 degrees) to eastings and northings (metres)."""
    lon_a = np.ascontiguousarray(lon, dtype=np.float64)
    lat_a = np.ascontiguousarray(lat, dtype=np.float64)
    if lon_a.size == 0:
        return np.empty(0), np.empty(0)
    easting, northing = convert_bng(lon_a, lat_a)
    return np.asarray(easting, dtype=np.float64), np.asarray(northing, dtype=np.float64)


def to_wgs84(easting: ArrayLike, northing: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Eastings and northings (metres) to longitudes and latitudes (WGS84 degrees)."""
    e_a = np.ascontiguousarray(easting, dtype=np.float64)
    n_a = np.ascontiguousarray(northing, dtype=np.float64)
    if e_a.size == 0:
        return np.empty(0), np.empty(0)
    lon, lat = convert_lonlat(e_a, n_a)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def point_to_bng(lon: float, lat: float) -> tuple[float, float]:
    e, n = to_bng([lon], [lat])
    return float(e[0]), float(n[0])


def point_to_wgs84(easting: float, northing: float) -> tuple[float, float]:
    lon, lat = to_wgs84([easting], [northing])
    return float(lon[0]), float(lat[0])
