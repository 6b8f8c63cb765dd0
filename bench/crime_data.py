"""Synthetic London wearers and crimes for the crime benchmarks (shared by crime_match.py and
crime_single.py).

Tracks are made here, vectorised, rather than by the device simulator (`tagwatch.simulate`),
which writes full feed records for every device type and would spend most of a benchmark's
minutes producing them. The shape is the simulator's: a home where the person sleeps (GPS
noise only), up to four places a day visited in straight lines between 07:00 and 23:00, one
fix a minute with the odd outage, accuracy from 4 to 60 m.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tagwatch.crime.matcher import CrimeSet, TrackSet

# Greater London on the national grid (metres).
WEST, EAST, SOUTH, NORTH = 505_000.0, 560_000.0, 158_000.0, 200_000.0
DAY_MS = 86_400_000
MINUTE_MS = 60_000
START_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z


def synthetic_tracks(people: int, days: int, seed: int = 1) -> TrackSet:
    """Each person sleeps at home (GPS noise only), visits up to four places a day, walking or
    driving between them in straight lines, one fix a minute, with the odd outage."""
    rng = np.random.default_rng(seed)
    per_day = DAY_MS // MINUTE_MS
    n_fix = people * days * per_day
    owner = np.repeat(np.arange(1, people + 1, dtype=np.int64), days * per_day)
    minute = np.tile(np.arange(days * per_day, dtype=np.int64), people)
    t_ms = START_MS + minute * MINUTE_MS + rng.integers(0, 5_000, n_fix)
    x = np.empty(n_fix)
    y = np.empty(n_fix)
    home_x = rng.uniform(WEST, EAST, people)
    home_y = rng.uniform(SOUTH, NORTH, people)
    m = np.arange(per_day, dtype=np.float64)
    for p in range(people):
        for d in range(days):
            stops = int(rng.integers(1, 5))
            px = np.clip(home_x[p] + rng.normal(0, 4000, stops), WEST, EAST)
            py = np.clip(home_y[p] + rng.normal(0, 4000, stops), SOUTH, NORTH)
            ax = np.concatenate([[home_x[p]], np.repeat(px, 2), [home_x[p]]])
            ay = np.concatenate([[home_y[p]], np.repeat(py, 2), [home_y[p]]])
            times = np.sort(rng.uniform(7 * 60, 23 * 60, 2 * stops + 2))
            seg = slice((p * days + d) * per_day, (p * days + d + 1) * per_day)
            x[seg] = np.interp(m, times, ax)
            y[seg] = np.interp(m, times, ay)
    accuracy = rng.choice([4.0, 8.0, 15.0, 30.0, 60.0], n_fix, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    x += rng.normal(0, 1, n_fix) * accuracy / 2
    y += rng.normal(0, 1, n_fix) * accuracy / 2
    # Outages: runs of about ten lost fixes.
    lost = rng.random(n_fix) < 0.003
    lost = np.convolve(lost.astype(np.int8), np.ones(10, dtype=np.int8), mode="same") > 0
    keep = ~lost
    return TrackSet(owner[keep], t_ms[keep], x[keep], y[keep], accuracy[keep])


def synthetic_crimes(
    count: int, tracks: TrackSet, days: int, seed: int = 2, start_ms: int = START_MS
) -> CrimeSet:
    """Half the crimes where somebody passed, half anywhere in `days` days from `start_ms`;
    windows of 0 to 12 hours."""
    rng = np.random.default_rng(seed)
    on_track = (count + 1) // 2
    pick = rng.integers(0, len(tracks), on_track)
    rest = count - on_track
    x = np.concatenate(
        [tracks.x[pick] + rng.normal(0, 80, on_track), rng.uniform(WEST, EAST, rest)]
    )
    y = np.concatenate(
        [tracks.y[pick] + rng.normal(0, 80, on_track), rng.uniform(SOUTH, NORTH, rest)]
    )
    centre = np.concatenate(
        [tracks.t_ms[pick], rng.integers(start_ms, start_ms + days * DAY_MS, rest)]
    )
    length = rng.choice([0, 15, 60, 180, 480, 720], count) * MINUTE_MS
    t_from = (centre - rng.integers(0, length + 1)).astype(np.int64)
    return CrimeSet(
        np.arange(1, count + 1, dtype=np.int64), x, y, t_from, (t_from + length).astype(np.int64)
    )


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu
