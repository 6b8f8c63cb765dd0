"""One wearer's day: where they are, second by second, and what was injected.

A day runs from 04:00 to 04:00 UK time, when everyone is at home asleep, so consecutive
days join without a jump. The plan is drawn from a generator seeded by (seed, wearer, date):
the same day comes out the same whatever the simulation's start.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tagwatch.simulate.cohort import local_moment
from tagwatch.simulate.schedule import period_intervals
from tagwatch.simulate.wearers import Life, Wearer, inside_point, outside_point

WALK_MPS = 1.35
DRIVE_MPS = 7.5  # London traffic, stops included
TRANSIT_MPS = 5.0
TRANSIT_WAIT_S = 360.0
HOUR = 3600.0

# Chance, per wearer-day, of each injected breach.
LATE_RETURN = 0.03
LEAVE_IN_CURFEW = 0.015
EXCLUSION_ENTRY = 0.05
INCLUSION_EXIT = 0.05


@dataclass
class Stay:
    start: float
    end: float
    xy: tuple[float, float]
    indoor: bool
    at_home: bool


@dataclass
class DayPlan:
    start: float
    end: float
    knots_t: NDArray[np.float64]
    knots_x: NDArray[np.float64]
    knots_y: NDArray[np.float64]
    stays: list[Stay]
    curfew: list[tuple[float, float]]
    injected: list[dict[str, Any]] = field(default_factory=list)

    def position(self, t: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return np.interp(t, self.knots_t, self.knots_x), np.interp(t, self.knots_t, self.knots_y)

    def away(self) -> list[tuple[float, float]]:
        """Intervals away from home (between leaving and coming back)."""
        homes = [s for s in self.stays if s.at_home]
        return [(a.end, b.start) for a, b in itertools.pairwise(homes) if b.start > a.end]

    def indoor(self, t: NDArray[np.float64]) -> NDArray[np.bool_]:
        starts = np.array([s.start for s in self.stays])
        ends = np.array([s.end for s in self.stays])
        indoor = np.array([s.indoor for s in self.stays])
        i = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
        return indoor[i] & (t <= ends[i])


def day_start(day: dt.date) -> float:
    return local_moment(day, "04:00").timestamp()


class _Builder:
    def __init__(self, wearer: Wearer, life: Life, start: float, end: float) -> None:
        self.wearer, self.life = wearer, life
        self.t_knots: list[float] = [start]
        self.xy_knots: list[tuple[float, float]] = [wearer.home]
        self.stays: list[Stay] = []
        self.stay_start = start
        self.here = wearer.home

    def travel_time(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        distance = math.hypot(b[0] - a[0], b[1] - a[1]) * 1.3  # streets are not straight
        if distance < 1_500:
            return distance / WALK_MPS
        if self.life.drives:
            return distance / DRIVE_MPS
        return TRANSIT_WAIT_S + distance / TRANSIT_MPS

    def go(
        self, t: float, to: tuple[float, float], rng: np.random.Generator, indoor: bool
    ) -> float:
        """Leave here at t along a street-like path; returns the arrival time."""
        a = self.here
        self._close_stay(t)
        duration = self.travel_time(a, to)
        # An L-shaped route in a street grid of random orientation, with wiggles.
        theta = rng.uniform(0, math.pi / 2)
        c, s = math.cos(theta), math.sin(theta)
        du = (to[0] - a[0]) * c + (to[1] - a[1]) * s
        dv = -(to[0] - a[0]) * s + (to[1] - a[1]) * c
        corner = (a[0] + du * c, a[1] + du * s)
        legs = [a, corner, to] if rng.random() < 0.5 else [a, (a[0] - dv * s, a[1] + dv * c), to]
        points = [legs[0]]
        for p, q in itertools.pairwise(legs):
            length = math.hypot(q[0] - p[0], q[1] - p[1])
            pieces = max(1, int(length // 400))
            for k in range(1, pieces + 1):
                f = k / pieces
                wiggle = rng.normal(0, 25) if k < pieces else 0.0
                points.append(
                    (p[0] + f * (q[0] - p[0]) + wiggle, p[1] + f * (q[1] - p[1]) + wiggle)
                )
        lengths = np.hypot(np.diff([p[0] for p in points]), np.diff([p[1] for p in points]))
        total = float(lengths.sum()) or 1.0
        wait = TRANSIT_WAIT_S if duration > total / WALK_MPS and not self.life.drives else 0.0
        moving = duration - wait
        self.t_knots.append(t + wait)
        self.xy_knots.append(a)
        cumulative = np.cumsum(lengths) / total
        for f, p in zip(cumulative, points[1:], strict=True):
            self.t_knots.append(t + wait + float(f) * moving)
            self.xy_knots.append(p)
        self.here = to
        self.stay_start = t + duration
        self._indoor = indoor
        return t + duration

    def _close_stay(self, t: float) -> None:
        at_home = self.here == self.wearer.home
        indoor = True if at_home or (not self.stays and at_home) else getattr(self, "_indoor", True)
        self.stays.append(Stay(self.stay_start, t, self.here, indoor, at_home))
        self.t_knots.append(t)
        self.xy_knots.append(self.here)

    def finish(self, end: float) -> tuple[list[float], list[tuple[float, float]], list[Stay]]:
        self._close_stay(end)
        return self.t_knots, self.xy_knots, self.stays


def plan_day(wearer: Wearer, life: Life, day: dt.date, seed: int) -> DayPlan:
    rng = np.random.default_rng([seed, 2, wearer.index, day.toordinal()])
    start = day_start(day)
    end = day_start(day + dt.timedelta(days=1))
    curfew = period_intervals(wearer.curfew, start, end) if wearer.curfew else []
    injected: list[dict[str, Any]] = []
    weekday = day.weekday() < 5

    wake = start + rng.uniform(2.0, 5.5) * HOUR  # 06:00-09:30
    morning_free = max([wake, *[e for s, e in curfew if s < start + 8 * HOUR]])
    evening = [s for s, _ in curfew if s > start + 8 * HOUR and s < end]
    deadline = evening[0] if evening else start + rng.uniform(15.0, 19.5) * HOUR
    margin = rng.uniform(5, 60) * 60

    activities: list[tuple[tuple[float, float], float, bool, str | None]] = []
    if life.employed and weekday and rng.random() < 0.9:
        activities.append((life.work, rng.uniform(6.5, 9.0) * HOUR, True, None))
    for _ in range(int(rng.poisson(1.4))):
        # Indoors mostly; some time in parks, markets and on the street.
        indoor = bool(rng.random() < 0.7)
        if rng.random() < 0.6:
            shop = life.shops[int(rng.integers(3))]
            activities.append((shop, rng.uniform(0.2, 1.0) * HOUR, indoor, None))
        else:
            friend = life.friends[int(rng.integers(3))]
            activities.append((friend, rng.uniform(0.5, 3.0) * HOUR, indoor, None))
    if wearer.exclusions and rng.random() < EXCLUSION_ENTRY:
        zone = wearer.exclusions[int(rng.integers(len(wearer.exclusions)))]
        if zone.schedule is None:
            spot = inside_point(zone, rng)
            stay = rng.uniform(10, 60) * 60
            # Early in the day (after work at the latest), so the evening never crowds it out.
            position = int(rng.integers(min(len(activities), 1) + 1))
            activities.insert(position, (spot, stay, False, "exclusion_entry"))
    if wearer.inclusions and rng.random() < INCLUSION_EXIT:
        zone = wearer.inclusions[0]
        spot = outside_point(zone, wearer.home, rng)
        activities.insert(0, (spot, rng.uniform(0.5, 2.0) * HOUR, True, "inclusion_exit"))
    late = bool(evening) and rng.random() < LATE_RETURN
    lateness = rng.uniform(10, 120) * 60 if late else 0.0
    if late and not activities:
        activities.append((life.friends[0], 2 * HOUR, True, None))

    b = _Builder(wearer, life, start, end)
    t = morning_free + rng.uniform(5, 60) * 60
    for spot, duration, indoor, tag in activities:
        back = b.travel_time(spot, wearer.home)
        arrive_by = b.travel_time(b.here, spot)
        if tag is None and t + arrive_by + duration + back > deadline - margin:
            duration = deadline - margin - back - t - arrive_by
            if duration < 300:
                break
        arrive = b.go(t, spot, rng, indoor)
        t = arrive + duration
        if tag:
            injected.append({"kind": tag, "start": arrive, "end": t})
        if t + back > deadline - margin and not late:
            break
    if b.here != wearer.home:
        back = b.travel_time(b.here, wearer.home)
        leave = t + rng.uniform(0, 1.5) * HOUR
        if late:
            leave = deadline + lateness - back
            injected.append({"kind": "curfew_late_return", "start": deadline, "end": leave + back})
        elif leave + back > deadline - margin:
            leave = max(t, deadline - margin - back)
        b.go(max(leave, t), wearer.home, rng, True)
    night_curfew = [(s, e) for s, e in curfew if s < end - 3 * HOUR and e > end - 3.5 * HOUR]
    if night_curfew and rng.random() < LEAVE_IN_CURFEW:
        go_at = end - rng.uniform(1.5, 3.5) * HOUR  # 00:30-02:30
        out_for = rng.uniform(0.5, 1.5) * HOUR
        friend = life.shops[0] if rng.random() < 0.5 else life.friends[1]
        arrive = b.go(max(go_at, b.stay_start + 60), friend, rng, True)
        home_at = b.go(arrive + out_for, wearer.home, rng, True)
        injected.append({"kind": "curfew_left_during", "start": go_at, "end": home_at})
    t_knots, xy, stays = b.finish(end)
    knots_t = np.asarray(t_knots)
    knots_t = np.maximum.accumulate(knots_t)  # a squeezed trip never runs time backwards
    xy_a = np.asarray(xy)
    return DayPlan(start, end, knots_t, xy_a[:, 0], xy_a[:, 1], stays, curfew, injected)
