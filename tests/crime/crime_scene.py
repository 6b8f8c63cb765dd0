"""Shared pieces of the crime tests: the time and the place of the scene, and fixes near it."""

from __future__ import annotations

import datetime as dt

from tagwatch.geo.projection import to_wgs84
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
# A crime scene in Camden on the national grid.
SCENE = (529_000.0, 184_000.0)


def gps_fixes(
    serial: str, allocation_id: int, points: list[tuple[float, float, float]], accuracy: float
) -> list[GpsFix]:
    """Fixes as telemetry stores them: (minutes after T0, metres east, metres north of SCENE)."""
    east = [SCENE[0] + p[1] for p in points]
    north = [SCENE[1] + p[2] for p in points]
    lon, lat = to_wgs84(east, north)
    rows = []
    for (minutes, _, _), lo, la in zip(points, lon.tolist(), lat.tolist(), strict=True):
        t_ms = to_ms(T0 + dt.timedelta(minutes=minutes))
        rows.append(
            GpsFix(
                dedupe_key=f"{serial}|gps|{t_ms}",
                device_serial=serial,
                allocation_id=allocation_id,
                t_ms=t_ms,
                received_ms=t_ms,
                lat=la,
                lon=lo,
                accuracy_m=accuracy,
                source="gnss",
            )
        )
    return rows
