"""Which fixes are plausible positions. Implausible fixes stay stored, flagged with the reason.

Static checks, judged once on receipt: impossible coordinates, and an observed time beyond
the allowed clock skew after the server received it.

The speed check is a chain per device. Take the device's statically plausible fixes in
(time, dedupe key) order; the first is plausible; each next fix is plausible when the
straight-line speed from the latest plausible fix before it is at most `max_speed_mps`
(equal times with different positions are implausible). The verdicts are a function of the
set of fixes alone, so they do not depend on the order in which fixes arrive: a late fix is
judged against its time-neighbours, and the fixes after it are re-judged (a fix it makes
implausible is flagged; one that was flagged only because of a wrong neighbour is cleared).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from tagwatch.telemetry.feed import coordinate_problem, format_time_ms

EARTH_RADIUS_M = 6_371_008.8
SPEED_PREFIX = "speed:"


class TrackPoint(NamedTuple):
    """A fix in a device's speed chain. Tuples sort by (t_ms, key): the chain's order."""

    t_ms: int
    key: str
    lat: float
    lon: float


def static_problem(
    lat: float, lon: float, t_ms: int, received_ms: int, clock_skew_ms: int
) -> str | None:
    """Why a fix is implausible whatever its neighbours, or None."""
    problem = coordinate_problem(lat, lon)
    if problem is not None:
        return problem
    if t_ms > received_ms + clock_skew_ms:
        ahead = (t_ms - received_ms) / 1000
        return f"future: observed {ahead:.0f} s after it was received"
    return None


def distance_m(
    lat1: NDArray[np.float64],
    lon1: NDArray[np.float64],
    lat2: NDArray[np.float64],
    lon2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Great-circle distances in metres (haversine). Every caller uses this one function, so
    a pair of fixes gets the same verdict whichever path judged it."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(lon2) - np.radians(lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))))


def _too_fast(
    dist: NDArray[np.float64], dt_ms: NDArray[np.int64], max_speed_mps: float
) -> NDArray[np.bool_]:
    return np.asarray(dist > max_speed_mps * (dt_ms / 1000.0))


def too_fast(
    lat1: NDArray[np.float64],
    lon1: NDArray[np.float64],
    lat2: NDArray[np.float64],
    lon2: NDArray[np.float64],
    dt_ms: NDArray[np.int64],
    max_speed_mps: float,
) -> NDArray[np.bool_]:
    """For each step from (lat1, lon1) to (lat2, lon2) taking `dt_ms`: over the limit?"""
    return _too_fast(distance_m(lat1, lon1, lat2, lon2), dt_ms, max_speed_mps)


def _speed_reason(prev: TrackPoint, point: TrackPoint, max_speed_mps: float) -> str | None:
    dist = distance_m(
        np.array([prev.lat]), np.array([prev.lon]), np.array([point.lat]), np.array([point.lon])
    )
    dt_ms = np.array([point.t_ms - prev.t_ms], dtype=np.int64)
    if not _too_fast(dist, dt_ms, max_speed_mps)[0]:
        return None
    at = format_time_ms(prev.t_ms)
    if dt_ms[0] == 0:
        return f"{SPEED_PREFIX} {dist[0]:.0f} m from the plausible fix at the same time {at}"
    speed = dist[0] / (dt_ms[0] / 1000)
    return (
        f"{SPEED_PREFIX} {speed:.1f} m/s from the previous plausible fix at {at}"
        f" (limit {max_speed_mps:g} m/s)"
    )


def judge_chain(
    prev: TrackPoint | None, points: Sequence[TrackPoint], max_speed_mps: float
) -> tuple[list[str | None], TrackPoint | None]:
    """Verdicts for `points` (sorted) after `prev`, and the last plausible point."""
    verdicts: list[str | None] = []
    for point in points:
        reason = None if prev is None else _speed_reason(prev, point, max_speed_mps)
        verdicts.append(reason)
        if reason is None:
            prev = point
    return verdicts, prev


def judge_devices(
    starts: dict[str, TrackPoint | None],
    tracks: dict[str, list[TrackPoint]],
    max_speed_mps: float,
) -> tuple[dict[str, list[str | None]], dict[str, TrackPoint | None]]:
    """`judge_chain` for many devices; vectorised for the usual case of no violation.

    Each track is sorted. Every step is first judged as if every point were plausible; up to
    a device's first step over the limit that assumption holds, so its points before that
    step are plausible, and only the rest of its track is judged one step at a time.
    """
    devices = [device for device, points in tracks.items() if points]
    verdicts: dict[str, list[str | None]] = {}
    lasts: dict[str, TrackPoint | None] = {}
    if not devices:
        return verdicts, lasts
    from_lat: list[float] = []
    from_lon: list[float] = []
    from_t: list[int] = []
    to_lat: list[float] = []
    to_lon: list[float] = []
    to_t: list[int] = []
    to_point: list[int] = []  # the step's destination: its index in its device's track
    owner: list[int] = []
    for index, device in enumerate(devices):
        prev = starts.get(device)
        for position, point in enumerate(tracks[device]):
            if prev is not None:
                from_lat.append(prev.lat)
                from_lon.append(prev.lon)
                from_t.append(prev.t_ms)
                to_lat.append(point.lat)
                to_lon.append(point.lon)
                to_t.append(point.t_ms)
                to_point.append(position)
                owner.append(index)
            prev = point
    first_flagged: dict[int, int] = {}  # device index -> its first step over the limit
    if owner:
        dist = distance_m(
            np.array(from_lat), np.array(from_lon), np.array(to_lat), np.array(to_lon)
        )
        dt_ms = np.array(to_t, dtype=np.int64) - np.array(from_t, dtype=np.int64)
        for step in np.flatnonzero(_too_fast(dist, dt_ms, max_speed_mps)).tolist():
            first_flagged.setdefault(owner[step], to_point[step])
    for index, device in enumerate(devices):
        points = tracks[device]
        cut = first_flagged.get(index)
        if cut is None:
            verdicts[device], lasts[device] = [None] * len(points), points[-1]
            continue
        before = starts.get(device) if cut == 0 else points[cut - 1]
        plausible: list[str | None] = [None] * cut
        rest, lasts[device] = judge_chain(before, points[cut:], max_speed_mps)
        verdicts[device] = plausible + rest
    return verdicts, lasts
