"""What the simulator needs to know about each wearer, read from an order-format cohort."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from tagwatch.simulate.cohort import FAULTY_BATCH
from tagwatch.simulate.frame import point_xy, to_xy


@dataclass
class Zone:
    name: str
    geometry: BaseGeometry  # in the simulator's metric frame
    schedule: list[dict[str, Any]] | None


@dataclass
class Wearer:
    index: int
    ref: str
    home: tuple[float, float]
    fitted_s: float
    gps: str | None = None
    gps_faulty: bool = False
    rf: str | None = None
    unit: str | None = None
    alcohol: str | None = None
    abstinent: bool = True
    non_fitted: str | None = None
    curfew: list[dict[str, Any]] | None = None
    exclusions: list[Zone] = field(default_factory=list)
    inclusions: list[Zone] = field(default_factory=list)

    @property
    def devices(self) -> list[str]:
        return [d for d in (self.gps, self.rf, self.unit, self.alcohol, self.non_fitted) if d]


def _geometry_xy(geometry: dict[str, Any]) -> BaseGeometry:
    if geometry["type"] == "Circle":
        lon, lat = geometry["coordinates"]
        return Point(point_xy(lon, lat)).buffer(float(geometry["radius_m"]), quad_segs=16)
    shp = shape(geometry)
    return shapely.transform(shp, lambda c: np.column_stack(to_xy(c[:, 0], c[:, 1])))


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wearers(cohort: dict[str, Any]) -> list[Wearer]:
    """Everyone with an active order and a fitted device, in cohort order."""
    batches = {d["serial"]: (d["type"], d["batch"]) for d in cohort["devices"]}
    out: list[Wearer] = []
    for index, person in enumerate(cohort["people"]):
        addresses = {a["ref"]: a for a in person["addresses"]}
        for order in person["orders"]:
            current = [a for a in order["allocations"] if a["removed_at"] is None]
            if order["status"] != "active" or not current:
                continue
            home_ref = next(
                (c["address_ref"] for c in order["conditions"] if c["type"] == "curfew"),
                person["addresses"][0]["ref"],
            )
            home = addresses[home_ref]
            wearer = Wearer(
                index=index,
                ref=person["ref"],
                home=point_xy(home["lon"], home["lat"]),
                fitted_s=min(_parse_time(a["fitted_at"]) for a in current),
            )
            for allocation in current:
                kind, batch = batches[allocation["device"]]
                serial = allocation["device"]
                if kind == "gps_tag":
                    wearer.gps, wearer.gps_faulty = serial, batch == FAULTY_BATCH
                elif kind == "rf_tag":
                    wearer.rf = serial
                elif kind == "home_monitoring_unit":
                    wearer.unit = serial
                elif kind == "alcohol_tag":
                    wearer.alcohol = serial
                elif kind == "non_fitted_device":
                    wearer.non_fitted = serial
            for condition in order["conditions"]:
                kind = condition["type"]
                if kind == "curfew":
                    wearer.curfew = condition["timetable"]
                elif kind in ("exclusion_zone", "inclusion_zone"):
                    zone = Zone(
                        condition["name"],
                        _geometry_xy(condition["geometry"]),
                        condition["schedule"],
                    )
                    shapely.prepare(zone.geometry)
                    (wearer.exclusions if kind == "exclusion_zone" else wearer.inclusions).append(
                        zone
                    )
                elif kind == "alcohol_monitoring":
                    wearer.abstinent = False
            out.append(wearer)
            break
    return out


@dataclass
class Life:
    """A wearer's stable habits: where they work, shop and visit, and how they travel."""

    employed: bool
    work: tuple[float, float]
    shops: list[tuple[float, float]]
    friends: list[tuple[float, float]]
    drives: bool
    phase_s: int  # when in the minute this tag takes its fixes
    drinker: float  # chance of a drinking episode on a given day
    urban: bool


def life_of(wearer: Wearer, seed: int) -> Life:
    rng = np.random.default_rng([seed, 3, wearer.index])
    hx, hy = wearer.home

    def place(low: float, high: float) -> tuple[float, float]:
        for _ in range(50):
            r, a = rng.uniform(low, high), rng.uniform(0, 2 * math.pi)
            candidate = (hx + r * math.cos(a), hy + r * math.sin(a))
            point = Point(candidate)
            if any(z.geometry.distance(point) < 300 for z in wearer.exclusions):
                continue
            if any(not z.geometry.contains(point.buffer(200)) for z in wearer.inclusions):
                continue
            return candidate
        return wearer.home

    return Life(
        employed=bool(rng.random() < 0.45),
        work=place(1_500, 9_000),
        shops=[place(200, 1_500) for _ in range(3)],
        friends=[place(500, 7_000) for _ in range(3)],
        drives=bool(rng.random() < 0.35),
        phase_s=int(rng.integers(0, 60)),
        drinker=float(rng.choice([0.02, 0.05, 0.15, 0.3], p=[0.5, 0.25, 0.15, 0.1])),
        urban=bool(math.hypot(hx, hy) < 6_000),
    )


def outside_point(
    zone: Zone, home: tuple[float, float], rng: np.random.Generator
) -> tuple[float, float]:
    """A point 1-3 km beyond an inclusion zone's edge, away from home."""
    bounds = zone.geometry.bounds
    reach = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    for _ in range(50):
        a = rng.uniform(0, 2 * math.pi)
        candidate = (home[0] + reach * math.cos(a), home[1] + reach * math.sin(a))
        if zone.geometry.distance(Point(candidate)) > 1_000:
            return candidate
    return (home[0] + 2 * reach, home[1])


def inside_point(zone: Zone, rng: np.random.Generator) -> tuple[float, float]:
    """A point well inside a zone (60 m or more from its edge when it is big enough)."""
    core = zone.geometry.buffer(-60)
    target = core if not core.is_empty else zone.geometry
    minx, miny, maxx, maxy = target.bounds
    for _ in range(100):
        candidate = (rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if target.contains(Point(candidate)):
            return candidate
    point = target.representative_point()
    return (point.x, point.y)
