"""The device simulator: feed v1 records for a cohort, in upload order, streaming.

Work is done one wearer-day at a time (a 04:00-04:00 UK day), vectorised with NumPy, so a
day for tens of thousands of wearers never sits in memory at once. Within a wearer-day the
records come out in the order they reach the server: late uploads after coverage gaps and
retransmitted duplicates are where a real channel would deliver them. No record carries
`received`: a channel sets that, not a device.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import shapely
from numpy.typing import NDArray

from tagwatch.compliance.rules import REPORTING_INTERVAL_SECONDS
from tagwatch.simulate.frame import to_lonlat
from tagwatch.simulate.routine import HOUR, DayPlan, day_start, plan_day
from tagwatch.simulate.schedule import inside, local_date, period_intervals, runs
from tagwatch.simulate.wearers import Life, Wearer, life_of, wearers

FIX_S: Final = 60
FAST_FIX_S: Final = 15  # while a zone or curfew rule is broken
STATUS_S: Final = 1_800
ALCOHOL_S: Final = 1_800
AWAY_FROM_HOME_M: Final = 100.0
SIGMA_PER_ACCURACY: Final = 1 / 1.515  # accuracy_m is the 68% radius of 2-D normal error
DUPLICATE_RATE: Final = 0.002
BURST_DUPLICATE_RATE: Final = 0.03
GPS_DRAIN_PER_H: Final = 3.2
GPS_CHARGE_PER_H: Final = 45.0
FAILURE_TO_CHARGE: Final = 0.02
FALSE_TAMPERS_PER_DAY: Final = 1.5
GENUINE_TAMPER: Final = 0.002
GAPS_PER_DAY: Final = 0.8
SOURCES: Final = np.array(["gnss", "wifi", "cell"])


class Scenario(Protocol):
    """Where ground truth goes: a list, or anything with `append` (e.g. a file writer)."""

    def append(self, entry: dict[str, Any], /) -> None: ...


@dataclass
class _State:
    seq: dict[str, int] = field(default_factory=dict)
    battery: dict[str, float] = field(default_factory=dict)


def iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(round(epoch_s), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _isos(epoch_s: NDArray[np.int64]) -> list[str]:
    text = np.datetime_as_string(epoch_s.astype("datetime64[s]"), unit="s")
    return [s + "Z" for s in text.tolist()]


def simulate_feed(
    cohort: dict[str, Any],
    start: dt.datetime,
    days: float,
    seed: int,
    scenario: Scenario | None = None,
) -> Iterator[dict[str, Any]]:
    """Feed v1 records for `days` from `start`, in upload order (see the module's docstring).

    When `scenario` is given, what was injected (the ground truth) is appended to it as it
    happens: `{"person", "device", "kind", "start", "end", "detail"}`.
    """
    for _, block in simulate_blocks(cohort, start, days, seed, scenario):
        for _, record in block:
            yield record


def simulate_blocks(
    cohort: dict[str, Any],
    start: dt.datetime,
    days: float,
    seed: int,
    scenario: Scenario | None = None,
) -> Iterator[tuple[dt.date, list[tuple[float, dict[str, Any]]]]]:
    """Per wearer-day: the day, and its (upload time in epoch seconds, record) pairs."""
    if start.tzinfo is None:
        raise ValueError("start must carry a time zone (UTC)")
    t0 = float(math.ceil(start.timestamp()))  # records carry whole seconds
    t1 = start.timestamp() + days * 86_400
    people = wearers(cohort)
    lives: dict[int, Life] = {}
    state = _State()
    for day in life_days(start, days):
        for wearer in people:
            life = lives.get(wearer.index)
            if life is None:
                life = lives[wearer.index] = life_of(wearer, seed)
            block = _wearer_day(wearer, life, day, t0, t1, seed, state, scenario)
            if block:
                yield day, block


def life_days(start: dt.datetime, days: float) -> list[dt.date]:
    """The simulated days (04:00 to 04:00 UK time) that overlap the run."""
    t0 = start.timestamp()
    t1 = t0 + days * 86_400
    day = local_date(t0)
    if day_start(day) > t0:
        day -= dt.timedelta(days=1)
    out = []
    while day_start(day) < t1:
        out.append(day)
        day += dt.timedelta(days=1)
    return out


class _Day:
    """The records of one wearer-day, collected per device before sequencing."""

    def __init__(
        self,
        wearer: Wearer,
        rng: np.random.Generator,
        fix_rng: np.random.Generator,
        scenario: Scenario | None,
        window: tuple[float, float],
    ) -> None:
        self.wearer, self.rng, self.fix_rng, self.scenario = wearer, rng, fix_rng, scenario
        self.window = window
        self.records: list[tuple[float, float, dict[str, Any]]] = []  # (time, upload, record)
        self.gaps: dict[str, list[tuple[float, float]]] = {}

    def log(
        self, kind: str, device: str | None, start: float, end: float | None, **detail: Any
    ) -> None:
        if self.scenario is not None:
            self.scenario.append(
                {
                    "person": self.wearer.ref,
                    "device": device,
                    "kind": kind,
                    "start": iso(start),
                    "end": None if end is None else iso(end),
                    "detail": detail,
                }
            )

    def add(self, device: str, kind: str, t: float, **fields: Any) -> None:
        t = float(math.floor(t))
        if not self.window[0] <= t < self.window[1]:
            return  # an event's sequel (strap closed, power back) after the run ends
        record = {"device": device, "type": kind, "time": iso(t), **fields}
        self.records.append((t, self.upload(device, t), record))

    def upload(self, device: str, t: float) -> float:
        return float(self.uploads(device, np.array([t]))[0])

    def uploads(self, device: str, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """When each observation reaches the server: seconds later, or after a gap."""
        up = t + self.rng.uniform(1.0, 30.0, t.size)
        for g0, g1 in self.gaps.get(device, ()):
            buffered = (t >= g0) & (t < g1)
            # Held until coverage returns, then sent newest first, a minute's data every 2 s,
            # so fresh fixes overtake the older end of the backlog.
            up[buffered] = g1 + 10.0 + (g1 - t[buffered]) / 30.0
        return up


def _wearer_day(
    wearer: Wearer,
    life: Life,
    day: dt.date,
    t0: float,
    t1: float,
    seed: int,
    state: _State,
    scenario: Scenario | None,
) -> list[tuple[float, dict[str, Any]]]:
    plan = plan_day(wearer, life, day, seed)
    a, b = max(t0, plan.start, wearer.fitted_s), min(t1, plan.end)
    if a >= b:
        return []
    rng = np.random.default_rng([seed, 4, wearer.index, day.toordinal()])
    fix_rng = np.random.default_rng([seed, 5, wearer.index, day.toordinal()])
    out = _Day(wearer, rng, fix_rng, scenario, (a, b))
    _log_curfew(out, plan, a, b)
    if wearer.gps:
        _gps_tag(out, wearer.gps, wearer, life, plan, a, b, state)
    if wearer.rf and wearer.unit:
        _rf(out, wearer.rf, wearer.unit, plan, a, b)
    if wearer.alcohol:
        _alcohol(out, wearer.alcohol, wearer, life, plan, a, b)
    if wearer.non_fitted:
        _checkins(out, wearer.non_fitted, plan, a, b)

    # Sequence numbers in observation order per device, then retransmissions, then delivery.
    out.records.sort(key=lambda r: (r[2]["device"], r[0]))
    for _, _, record in out.records:
        device = record["device"]
        n = state.seq.get(device, 0) + 1
        state.seq[device] = n
        record["seq"] = n
    deliveries = [(upload, record) for _, upload, record in out.records]
    delay = np.array([upload - t for t, upload, _ in out.records])
    # Retransmissions: rare, but common in the burst after a gap (acknowledgements get lost).
    chance = np.where(delay > 60.0, BURST_DUPLICATE_RATE, DUPLICATE_RATE)
    chosen = np.flatnonzero(rng.random(len(deliveries)) < chance)
    for i in chosen.tolist():
        upload, record = deliveries[i]
        deliveries.append((upload + float(rng.uniform(20, 300)), dict(record)))
        out.log("duplicate", record["device"], upload, None, seq=record["seq"])
    deliveries.sort(key=lambda d: d[0])
    return deliveries


def _log_curfew(out: _Day, plan: DayPlan, a: float, b: float) -> None:
    injected = {i["kind"]: i for i in plan.injected if i["kind"].startswith("curfew")}
    device = out.wearer.gps or out.wearer.rf or out.wearer.alcohol
    for leave, back in plan.away():
        for s, e in plan.curfew:
            start, end = max(leave, s, a), min(back, e, b)
            if end > start:
                cause = next(
                    (k for k, i in injected.items() if i["start"] <= end and i["end"] >= start),
                    None,
                )
                out.log("curfew_absence", device, start, end, injected=cause)


def _gps_tag(
    out: _Day,
    serial: str,
    wearer: Wearer,
    life: Life,
    plan: DayPlan,
    a: float,
    b: float,
    state: _State,
) -> None:
    rng = out.rng
    for _ in range(int(rng.poisson(GAPS_PER_DAY))):
        g0 = float(rng.uniform(a, b))
        g1 = min(b, g0 + float(rng.uniform(5, 120)) * 60)
        out.gaps.setdefault(serial, []).append((g0, g1))
        out.log("coverage_gap", serial, g0, g1)
    alive = _battery(out, serial, plan, a, b, state)

    k0 = math.ceil((a - life.phase_s) / FAST_FIX_S)
    k1 = math.ceil((b - life.phase_s) / FAST_FIX_S)
    k = np.arange(k0, k1)
    t = life.phase_s + FAST_FIX_S * k.astype(np.float64)
    x, y = plan.position(t)
    broken = np.zeros(t.shape, dtype=bool)
    if plan.curfew:
        far = np.hypot(x - wearer.home[0], y - wearer.home[1]) > AWAY_FROM_HOME_M
        broken |= inside(t, plan.curfew) & far
    planned = {i["kind"]: i for i in plan.injected}
    for zones, kind, want_inside in (
        (wearer.exclusions, "exclusion_entry", True),
        (wearer.inclusions, "inclusion_exit", False),
    ):
        for zone in zones:
            flags = shapely.contains_xy(zone.geometry, x, y) == want_inside
            if zone.schedule is not None:
                flags &= inside(t, period_intervals(zone.schedule, a, b))
            broken |= flags
            for s, e in runs(flags, t):
                cause = planned.get(kind)
                was_planned = cause is not None and cause["start"] <= e and cause["end"] >= s
                out.log(kind, serial, s, e, zone=zone.name, injected=was_planned)
    keep = ((k % (FIX_S // FAST_FIX_S)) == 0) | broken
    keep &= alive(t)
    t, x, y = t[keep], x[keep], y[keep]
    n = t.size
    if n == 0:
        return

    # Where the fix was taken decides its quality: open sky, street canyon or indoors.
    # The draws are made for every slot of the whole day and then picked, so a fix comes
    # out the same whatever part of the day a run covers.
    day_k0 = math.ceil((plan.start - life.phase_s) / FAST_FIX_S)
    slots = math.ceil((plan.end - life.phase_s) / FAST_FIX_S) - day_k0
    j = k[keep] - day_k0
    u = out.fix_rng.random((2, slots))[:, j]
    z = out.fix_rng.standard_normal((7, slots))[:, j]
    indoor = plan.indoor(t)
    canyon = ~indoor & (u[0] < (0.6 if life.urban else 0.2))
    source = np.zeros(n, dtype=np.int8)
    source[indoor & (u[1] >= 0.55)] = 1
    source[indoor & (u[1] >= 0.9)] = 2

    def lognormal(median: float, spread: float, row: int, low: float, high: float) -> Any:
        return np.clip(np.exp(math.log(median) + spread * z[row]), low, high)

    accuracy = np.where(canyon, lognormal(20, 0.45, 1, 10, 60), lognormal(3.5, 0.25, 0, 2, 8))
    indoors = [lognormal(35, 0.5, 2, 15, 150), lognormal(25, 0.3, 3, 10, 60)]
    indoors.append(lognormal(600, 0.4, 4, 300, 1_500))
    accuracy = np.where(indoor, np.choose(source, indoors), accuracy)
    accuracy = np.round(accuracy, 1)
    sigma = accuracy * SIGMA_PER_ACCURACY
    lon, lat = to_lonlat(x + z[5] * sigma, y + z[6] * sigma)

    uploads = out.uploads(serial, t)
    times = _isos(t.astype(np.int64))
    columns = zip(
        t.tolist(),
        uploads.tolist(),
        times,
        np.round(lat, 6).tolist(),
        np.round(lon, 6).tolist(),
        accuracy.tolist(),
        SOURCES[source].tolist(),
        strict=True,
    )
    out.records.extend(
        [
            (
                ts,
                up,
                {
                    "device": serial,
                    "type": "gps",
                    "time": time,
                    "lat": la,
                    "lon": lo,
                    "accuracy_m": acc,
                    "source": src,
                },
            )
            for ts, up, time, la, lo, acc, src in columns
        ]
    )
    _tampers(out, serial, wearer, plan, a, b)


def _battery(out: _Day, serial: str, plan: DayPlan, a: float, b: float, state: _State) -> Any:
    """Battery level through the day, its status records, and when the tag is alive."""
    rng = out.rng
    level = state.battery.get(serial)
    if level is None:
        level = float(rng.uniform(85, 100))  # charged the evening before
    charge: tuple[float, float] | None = None
    evening_home = [s for s in plan.stays if s.at_home and s.start > plan.start + 12 * HOUR]
    if evening_home and rng.random() >= FAILURE_TO_CHARGE:
        home = evening_home[-1]
        c0 = home.start + float(rng.uniform(0.2, 2.5)) * HOUR
        charge = (c0, c0 + float(rng.uniform(1.5, 2.5)) * HOUR)
    elif level < 40:
        out.log("failure_to_charge", serial, a, b)
    grid = np.arange(a, b, 60.0)
    levels = _levels(grid, a, level, charge)
    state.battery[serial] = float(levels[-1]) if levels.size else level
    dead = levels <= 0.0
    charging_flags = (
        (grid >= charge[0]) & (grid < charge[1]) if charge else np.zeros(grid.size, bool)
    )
    dead &= ~charging_flags
    for s, e in runs(dead, grid):
        out.log("battery_flat", serial, s, e + 60)
    status_every = int(STATUS_S // 60)
    for i in range(0, grid.size, status_every):
        if not dead[i]:
            out.add(
                serial,
                "status",
                grid[i],
                battery_pct=int(levels[i]),
                charging=bool(charging_flags[i]),
            )
    if charge:
        for moment, flag in ((charge[0], True), (charge[1], False)):
            if a <= moment < b:
                i = min(grid.size - 1, int((moment - a) // 60))
                out.add(serial, "status", moment, battery_pct=int(levels[i]), charging=flag)

    def alive(t: NDArray[np.float64]) -> NDArray[np.bool_]:
        i = np.clip(((t - a) // 60).astype(np.int64), 0, max(grid.size - 1, 0))
        return ~dead[i] if grid.size else np.ones(t.shape, bool)

    return alive


def _levels(
    grid: NDArray[np.float64], a: float, level: float, charge: tuple[float, float] | None
) -> NDArray[np.float64]:
    """Battery level at each time: draining, then charging, then draining again."""
    drain = GPS_DRAIN_PER_H / HOUR
    if charge is None:
        return np.clip(level - drain * (grid - a), 0.0, 100.0)
    c0, c1 = max(charge[0], a), max(charge[1], a)
    at_c0 = max(0.0, level - drain * (c0 - a))
    at_c1 = min(100.0, at_c0 + GPS_CHARGE_PER_H / HOUR * (c1 - c0))
    before = np.clip(level - drain * (grid - a), 0.0, 100.0)
    during = np.clip(at_c0 + GPS_CHARGE_PER_H / HOUR * (grid - c0), 0.0, 100.0)
    after = np.clip(at_c1 - drain * (grid - c1), 0.0, 100.0)
    return np.where(grid < c0, before, np.where(grid < c1, during, after))


def _tampers(out: _Day, serial: str, wearer: Wearer, plan: DayPlan, a: float, b: float) -> None:
    rng = out.rng
    if wearer.gps_faulty:
        for _ in range(int(rng.poisson(FALSE_TAMPERS_PER_DAY))):
            t = float(rng.uniform(a, b))
            back = t + float(rng.uniform(3, 90))
            out.add(serial, "status", t, strap="open")
            out.add(serial, "status", back, strap="ok")
            out.log("tamper_false", serial, t, back, batch="faulty")
    if rng.random() < GENUINE_TAMPER:
        homes = [s for s in plan.stays if s.at_home and s.end - s.start > HOUR]
        stay = homes[-1] if homes else None
        if stay and a <= stay.start < b:
            t = stay.start + 600
            refit = min(b - 1, t + float(rng.uniform(1, 3)) * HOUR)
            out.add(serial, "status", t, strap="open", body="no_contact")
            out.add(serial, "status", refit, strap="ok", body="ok")
            out.log("tamper_genuine", serial, t, refit)


def _rf(out: _Day, tag: str, unit: str, plan: DayPlan, a: float, b: float) -> None:
    """The home unit reports the tag's range state on every heartbeat and at each change."""
    rng = out.rng
    changes: list[tuple[float, str]] = [(a, "in_range")] if plan.start >= a else []
    for leave, back in plan.away():
        gone = leave + float(rng.uniform(30, 120))  # the unit notices missed heartbeats
        returned = back + float(rng.uniform(5, 60))
        if a <= gone < b:
            changes.append((gone, "out_of_range"))
        if a <= returned < b:
            changes.append((returned, "in_range"))
    for t, state in changes:
        out.add(tag, "rf", t, state=state, unit=unit)
    # Heartbeats at the intervals the rule set expects; a day starts with everyone at home.
    times = np.array([a] + [t for t, _ in changes])
    states = ["in_range"] + [state for _, state in changes]
    for t in np.arange(a, b, REPORTING_INTERVAL_SECONDS["rf_tag"]):
        latest = int(np.searchsorted(times, t, "right")) - 1
        if times[latest] != t or latest == 0:
            out.add(tag, "rf", float(t), state=states[latest], unit=unit)
    days_worn = max(0.0, (a - out.wearer.fitted_s) / 86_400)
    for t in np.arange(a, b, 6 * HOUR):
        out.add(tag, "status", t, battery_pct=max(5, int(100 - days_worn * 0.25)), strap="ok")
    off = on = b
    if rng.random() < 0.005:
        off = float(rng.uniform(a, b))
        on = min(b - 1, off + float(rng.uniform(10, 240)) * 60)
        out.add(unit, "status", off, unit_power="off")
        out.add(unit, "status", on, unit_power="on")
        out.log("unit_power_loss", unit, off, on)
    for t in np.arange(a + 30, b, REPORTING_INTERVAL_SECONDS["home_monitoring_unit"]):
        out.add(unit, "status", float(t), unit_power="off" if off <= t < on else "on")
    if rng.random() < 0.002:
        moved = float(rng.uniform(a, b))
        out.add(unit, "status", moved, unit_moved=True)
        out.log("unit_moved", unit, moved, None)


def _alcohol(
    out: _Day, serial: str, wearer: Wearer, life: Life, plan: DayPlan, a: float, b: float
) -> None:
    rng = out.rng
    slots = np.arange(
        math.ceil((a - life.phase_s) / ALCOHOL_S), math.ceil((b - life.phase_s) / ALCOHOL_S)
    )
    t = life.phase_s + ALCOHOL_S * slots.astype(np.float64)
    tac = np.zeros(t.size)
    chance = 0.03 if wearer.abstinent else life.drinker
    if rng.random() < chance:
        # Transdermal alcohol lags drinking: a slow rise to a peak, then a steady fall.
        begin = plan.start + float(rng.uniform(14, 19)) * HOUR  # 18:00-23:00
        peak = float(rng.uniform(0.02, 0.15))
        rise = float(rng.uniform(1.0, 2.0)) * HOUR
        fall = peak / 0.015 * HOUR
        up = np.clip((t - begin) / rise, 0, 1) * peak
        down = peak - np.clip((t - begin - rise) / fall, 0, None) * peak
        tac = np.where(t < begin + rise, up, np.clip(down, 0, None))
        out.log("drinking", serial, begin, begin + rise + fall, peak_tac_g_dl=round(peak, 3))
    noise = rng.random(t.size) < 0.05
    tac = np.round(tac + noise * rng.uniform(0, 0.004, t.size), 3)
    obstructed = rng.random(t.size) < 0.01
    for moment, value, blocked in zip(t.tolist(), tac.tolist(), obstructed.tolist(), strict=True):
        if blocked:
            out.add(serial, "alcohol", moment, tac_g_dl=0.0, status="obstructed")
        else:
            out.add(serial, "alcohol", moment, tac_g_dl=value, status="ok")
    days_worn = max(0.0, (a - wearer.fitted_s) / 86_400)
    for moment in np.arange(a, b, 6 * HOUR).tolist():
        out.add(
            serial,
            "status",
            moment,
            battery_pct=100 - int(days_worn * 1.5) % 90,  # recharged every two months
            strap="ok",
            body="ok",
        )


def _checkins(out: _Day, serial: str, plan: DayPlan, a: float, b: float) -> None:
    rng = out.rng
    for hour in (5.5, 13.5):  # 09:30 and 17:30 UK time, give or take
        t = plan.start + (hour + float(rng.uniform(-0.5, 0.5))) * HOUR
        if not a <= t < b:
            continue
        roll = rng.random()
        if roll < 0.03:
            out.add(serial, "checkin", t, result="missed")
            out.log("checkin_missed", serial, t, None)
            continue
        result = "failed" if roll < 0.06 else "success"
        out.add(serial, "checkin", t, result=result, method="face")
        if result == "failed":
            out.log("checkin_failed", serial, t, None)
        x, y = plan.position(np.array([t]))
        lon, lat = to_lonlat(x + rng.normal(0, 8), y + rng.normal(0, 8))
        out.add(
            serial,
            "gps",
            t + 1,
            lat=round(float(lat[0]), 6),
            lon=round(float(lon[0]), 6),
            accuracy_m=12.0,
            source="gnss",
        )
