"""Weekly timetables (UK local time) as intervals of epoch seconds, and tests against them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tagwatch.simulate.cohort import LONDON, WEEKDAYS, local_moment


def local_date(epoch_s: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_s, LONDON).date()


def period_intervals(
    periods: Iterable[Mapping[str, Any]], t0: float, t1: float
) -> list[tuple[float, float]]:
    """Every occurrence of the weekly periods that overlaps [t0, t1), in time order."""
    periods = list(periods)
    out: list[tuple[float, float]] = []
    day = local_date(t0) - dt.timedelta(days=1)
    last = local_date(t1) + dt.timedelta(days=1)
    while day <= last:
        name = WEEKDAYS[day.weekday()]
        for period in periods:
            if period["day"] != name:
                continue
            start = local_moment(day, period["start"])
            end_day = day if period["end"] > period["start"] else day + dt.timedelta(days=1)
            end = local_moment(end_day, period["end"])
            s, e = start.timestamp(), end.timestamp()
            if e > t0 and s < t1:
                out.append((s, e))
        day += dt.timedelta(days=1)
    out.sort()
    merged: list[tuple[float, float]] = []
    for s, e in out:  # touching or overlapping occurrences become one interval
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def inside(t: NDArray[np.float64], intervals: list[tuple[float, float]]) -> NDArray[np.bool_]:
    """Which times fall in any of the (sorted, non-overlapping) half-open intervals."""
    if not intervals:
        return np.zeros(t.shape, dtype=bool)
    bounds = np.asarray(intervals, dtype=np.float64).ravel()
    flags: NDArray[np.bool_] = (np.searchsorted(bounds, t, side="right") % 2) == 1
    return flags


def runs(flags: NDArray[np.bool_], t: NDArray[np.float64]) -> list[tuple[float, float]]:
    """The [first, last] times of each run of True in `flags`."""
    if not flags.any():
        return []
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(float(t[s]), float(t[e])) for s, e in zip(starts, ends, strict=True)]
