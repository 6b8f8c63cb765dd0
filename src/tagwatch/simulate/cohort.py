"""A deterministic synthetic cohort of London wearers in order format v1.

`generate_cohort(people, seed, start)` returns a complete document that the order import
accepts (docs/order-format.md): people with realistic demographics, identifiers, addresses
in and around London, and orders whose mix follows the national one (about half GPS, a
third RF curfew, a fifth alcohol, a few non-fitted devices), with devices and allocations.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from tagwatch.simulate import identifiers as ids
from tagwatch.simulate.frame import point_lonlat, point_xy
from tagwatch.simulate.people import (
    ETHNICITIES,
    LANGUAGES,
    NATIONALITIES,
    RELIGION_POOL,
    RELIGIONS,
    family_names,
    given_names,
)
from tagwatch.simulate.places import (
    BUILDING_NAMES,
    BUILDINGS,
    CROWN_COURTS,
    DELIVERY_UNITS,
    DISTRICTS,
    HOME_OFFICE_TEAMS,
    INWARD_LETTERS,
    MAGISTRATES_COURTS,
    MENS_PRISONS,
    PROBATION_NAME,
    REGION,
    STREETS,
    WOMENS_PRISONS,
)

LONDON: Final = ZoneInfo("Europe/London")
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FAULTY_BATCH: Final = "GPS-2026-03"  # a strap batch that reports tampers that never happened

# Monitoring mixes: what kind of device an order is monitored with, and its share.
MONITORING: Final = {"gps": 0.48, "rf": 0.32, "alcohol": 0.17, "non_fitted": 0.03}
ORDER_TYPES: Final[dict[str, dict[str, float]]] = {
    "gps": {
        "licence": 40,
        "court_bail": 15,
        "civil_order": 10,
        "community_order": 12,
        "suspended_sentence_order": 8,
        "post_sentence_supervision": 7,
    },
    "rf": {
        "home_detention_curfew": 40,
        "community_order": 30,
        "suspended_sentence_order": 15,
        "court_bail": 15,
    },
    "alcohol": {"community_order": 60, "suspended_sentence_order": 30, "licence": 10},
    "non_fitted": {"court_bail": 60, "community_order": 40},
}
CUSTODY_ORDERS: Final = frozenset({"licence", "home_detention_curfew", "post_sentence_supervision"})
DEVICE_MODELS: Final = {
    "gps_tag": ("TW-G3", "GPS"),
    "rf_tag": ("TW-R2", "RF"),
    "home_monitoring_unit": ("TW-H2", "HMU"),
    "alcohol_tag": ("TW-A1", "TAC"),
    "non_fitted_device": ("TW-N1", "NFD"),
}
# Curfew timetables: (weeknight start, end, Friday/Saturday start, end), local time.
TIMETABLES: Final = (
    ("19:00", "07:00", "19:00", "07:00"),
    ("20:00", "06:00", "20:00", "06:00"),
    ("21:00", "06:00", "19:00", "07:00"),
    ("22:00", "06:00", "22:00", "07:00"),
    ("19:00", "06:00", "21:00", "06:00"),
)


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _pick(rng: np.random.Generator, options: tuple[Any, ...] | list[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_moment(day: dt.date, hhmm: str) -> dt.datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


@dataclass
class _Builder:
    rng: np.random.Generator
    start: dt.date
    officers: int
    devices: list[dict[str, Any]] = field(default_factory=list)
    next_order: int = 1
    device_counts: dict[str, int] = field(default_factory=dict)

    def device(self, kind: str, faulty: bool = False) -> str:
        model, prefix = DEVICE_MODELS[kind]
        number = self.device_counts.get(kind, 0) + 1
        self.device_counts[kind] = number
        serial = f"{prefix}{number:07d}"
        year_month = _pick(self.rng, ("2025-04", "2025-09", "2026-01", "2026-06"))
        batch = FAULTY_BATCH if faulty else f"{prefix}-{year_month}"
        self.devices.append({"serial": serial, "type": kind, "model": model, "batch": batch})
        return serial

    def officer(self) -> str:
        return f"officer{int(self.rng.integers(self.officers)) + 1}"


def generate_cohort(people: int, seed: int, start: dt.date) -> dict[str, Any]:
    """A complete order-format document for `people` wearers, the same for the same seed."""
    if people < 1:
        raise ValueError("people must be at least 1")
    rng = np.random.default_rng([seed, 1])
    builder = _Builder(rng=rng, start=start, officers=max(1, round(people / 40)))
    numbers = {
        "crn": ids.unique_numbers(rng, people, 1_000_000),
        "pnc": ids.unique_numbers(rng, people, 10_000_000),
        "nomis": ids.unique_numbers(rng, people, 26 * 10_000 * 676),
        "prison": ids.unique_numbers(rng, people, 676 * 10_000),
        "home_office": ids.unique_numbers(rng, people, 26 * 10_000_000),
    }
    district_weights = np.array([d.weight for d in DISTRICTS])
    district_weights /= district_weights.sum()
    persons = [
        _person(builder, index, {k: v[index] for k, v in numbers.items()}, district_weights)
        for index in range(people)
    ]
    return {
        "format": "tagwatch-orders",
        "version": 1,
        "devices": builder.devices,
        "people": persons,
    }


def _person(
    b: _Builder, index: int, numbers: dict[str, int], district_weights: np.ndarray
) -> dict[str, Any]:
    rng = b.rng
    female = rng.random() < 0.10
    ethnicity = _weighted(rng, {k: w for k, (w, _) in ETHNICITIES.items()})
    pool = ETHNICITIES[ethnicity][1]
    nationality = _weighted(rng, dict(NATIONALITIES[pool]))
    language = LANGUAGES[nationality]
    age_years = float(np.clip(18 + rng.gamma(2.2, 7.5), 18.05, 70.0))
    born = b.start - dt.timedelta(days=int(age_years * 365.25))
    given = _pick(rng, given_names(pool, female))
    family = _pick(rng, family_names(pool))
    names = [{"kind": "primary", "given": given, "family": family, "middle": None}]
    if rng.random() < 0.2:
        names.append(
            {
                "kind": "alias",
                "given": _pick(rng, given_names(pool, female)),
                "family": _pick(rng, (family, *family_names(pool))),
                "middle": None,
            }
        )
    sex = "female" if female else "male"
    gender = "woman" if female else "man"
    roll = rng.random()
    if roll < 0.02:
        sex, gender = "not_recorded", "not_recorded"
    elif roll < 0.025:
        gender = "non_binary"
    district = DISTRICTS[int(rng.choice(len(DISTRICTS), p=district_weights))]
    home = _address(rng, "A1", district)
    unit = district.unit
    addresses = [home]
    if rng.random() < 0.2:
        other = DISTRICTS[int(rng.choice(len(DISTRICTS), p=district_weights))]
        addresses.append(_address(rng, "A2", other))

    kind = _weighted(rng, MONITORING)
    order_type = _weighted(rng, ORDER_TYPES[kind])
    foreign = nationality not in ("GBR", "IRL", "not_recorded")
    if foreign and kind in ("gps", "non_fitted") and rng.random() < 0.3:
        order_type = "immigration_bail"
    identifiers: dict[str, str] = {"crn": ids.crn(int(rng.integers(26)), numbers["crn"])}
    if rng.random() < 0.92:
        year = int(rng.integers(1995, b.start.year + 1))
        identifiers["pnc"] = ids.pnc(year, numbers["pnc"])
    if order_type in CUSTODY_ORDERS:
        identifiers["nomis"] = ids.nomis(numbers["nomis"])
        if rng.random() < 0.6:
            identifiers["prison_number"] = ids.prison_number(numbers["prison"])
    if order_type == "immigration_bail" or (foreign and rng.random() < 0.3):
        identifiers["home_office_ref"] = ids.home_office_ref(numbers["home_office"])

    orders = [_order(b, kind, order_type, female, home, unit, _current_status(rng))]
    if rng.random() < 0.08:
        earlier_kind = _weighted(rng, MONITORING)
        earlier_type = _weighted(rng, ORDER_TYPES[earlier_kind])
        orders.append(_order(b, earlier_kind, earlier_type, female, home, unit, "ended"))
    return {
        "ref": f"TW{index + 1:06d}",
        "names": names,
        "date_of_birth": born.isoformat(),
        "sex": sex,
        "gender": gender,
        "ethnicity": ethnicity,
        "disability": _weighted(
            rng, {"yes": 20, "no": 55, "not_recorded": 22, "prefers_not_to_say": 3}
        ),
        "nationality": nationality,
        "religion": _weighted(rng, dict(RELIGIONS[RELIGION_POOL.get(pool, "default")])),
        "language": language,
        "interpreter_needed": bool(language != "en" and rng.random() < 0.6),
        "identifiers": identifiers,
        "restricted": bool(rng.random() < 0.005),
        "addresses": addresses,
        "orders": orders,
    }


def _current_status(rng: np.random.Generator) -> str:
    return _weighted(rng, {"active": 88, "awaiting_fitting": 7, "ended": 5})


def _address(rng: np.random.Generator, ref: str, district: Any) -> dict[str, Any]:
    x0, y0 = point_xy(district.lon, district.lat)
    radius = 900 * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    lon, lat = point_lonlat(x0 + radius * math.cos(angle), y0 + radius * math.sin(angle))
    number = int(rng.integers(1, 240))
    street = _pick(rng, STREETS)
    line1 = f"{number} {street}"
    line2 = None
    if rng.random() < 0.45:  # most of London's caseload lives in flats
        line2 = line1
        line1 = _pick(rng, BUILDINGS).format(
            n=int(rng.integers(1, 80)), name=_pick(rng, BUILDING_NAMES)
        )
    letters = list(INWARD_LETTERS)
    inward = f"{int(rng.integers(1, 10))}{_pick(rng, letters)}{_pick(rng, letters)}"
    return {
        "ref": ref,
        "line1": line1,
        "line2": line2,
        "town": district.town,
        "postcode": f"{district.outward} {inward}",
        "lat": lat,
        "lon": lon,
    }


def _organisations(
    rng: np.random.Generator, order_type: str, female: bool, unit_name: str
) -> tuple[dict[str, str], dict[str, str]]:
    if order_type == "immigration_bail":
        team = {"kind": "home_office", "name": _pick(rng, HOME_OFFICE_TEAMS)}
        return team, team
    if order_type in CUSTODY_ORDERS:
        prisons = WOMENS_PRISONS if female else MENS_PRISONS
        notifying = {"kind": "prison", "name": _pick(rng, prisons)}
    else:
        courts = MAGISTRATES_COURTS if rng.random() < 0.6 else CROWN_COURTS
        notifying = {"kind": "court", "name": _pick(rng, courts)}
    return notifying, {"kind": "probation", "name": f"{PROBATION_NAME}: {unit_name}"}


def _dates(rng: np.random.Generator, start: dt.date, status: str) -> tuple[dt.date, dt.date]:
    if status == "ended":
        end = start - dt.timedelta(days=int(rng.integers(1, 150)))
        return end - dt.timedelta(days=int(rng.integers(30, 365))), end
    if status == "awaiting_fitting":
        begin = start - dt.timedelta(days=int(rng.integers(0, 21)))
    else:
        begin = start - dt.timedelta(days=int(rng.integers(1, 400)))
    return begin, start + dt.timedelta(days=int(rng.integers(14, 500)))


def _order(
    b: _Builder,
    kind: str,
    order_type: str,
    female: bool,
    home: dict[str, Any],
    unit: str,
    status: str,
) -> dict[str, Any]:
    rng = b.rng
    begin, end = _dates(rng, b.start, status)
    notifying, responsible = _organisations(rng, order_type, female, DELIVERY_UNITS[unit])
    starts = local_moment(begin, "00:00")
    ends = local_moment(end, "00:00")
    conditions = _conditions(b, kind, order_type, home, begin, starts, ends)
    fitting_deadline = local_moment(begin + dt.timedelta(days=1), "12:00")
    allocations: list[dict[str, Any]] = []
    if status in ("active", "ended"):
        fitted = local_moment(begin, "14:00") + dt.timedelta(minutes=int(rng.integers(0, 420)))
        removed = rfc3339(ends) if status == "ended" else None
        for device_kind in _device_kinds(kind, conditions):
            faulty = device_kind == "gps_tag" and rng.random() < 0.05
            allocations.append(
                {
                    "device": b.device(device_kind, faulty),
                    "fitted_at": rfc3339(fitted),
                    "removed_at": removed,
                }
            )
    order_number = b.next_order
    b.next_order += 1
    order: dict[str, Any] = {
        "ref": f"ORD{order_number:07d}",
        "type": order_type,
        "status": status,
        "end_reason": _pick(rng, ("completed",) * 3 + ("revoked",) * 2)
        if status == "ended"
        else None,
        "notifying_organisation": notifying,
        "responsible_organisation": responsible,
        "region": REGION,
        "delivery_unit": unit,
        "responsible_officer": b.officer(),
        "start_date": begin.isoformat(),
        "end_date": end.isoformat(),
        "fitting_deadline": rfc3339(fitting_deadline),
        "conditions": conditions,
        "allocations": allocations,
        "history": [],
    }
    return order


def _device_kinds(kind: str, conditions: list[dict[str, Any]]) -> list[str]:
    rf_curfew = kind in ("rf", "alcohol") and any(c["type"] == "curfew" for c in conditions)
    kinds = {
        "gps": ["gps_tag"],
        "rf": [],
        "alcohol": ["alcohol_tag"],
        "non_fitted": ["non_fitted_device"],
    }[kind]
    return kinds + (["rf_tag", "home_monitoring_unit"] if rf_curfew else [])


def _conditions(
    b: _Builder,
    kind: str,
    order_type: str,
    home: dict[str, Any],
    begin: dt.date,
    starts: dt.datetime,
    ends: dt.datetime,
) -> list[dict[str, Any]]:
    rng = b.rng
    span = {"start": rfc3339(starts), "end": rfc3339(ends)}
    conditions: list[dict[str, Any]] = []
    wants_curfew = (
        kind == "rf"
        or (kind == "gps" and rng.random() < 0.25)
        or (kind == "alcohol" and rng.random() < 0.2)
    )
    if wants_curfew:
        conditions.append(_curfew(b, order_type, home, begin, starts, span))
    if kind in ("gps", "non_fitted"):
        conditions.append({"type": "trail_monitoring", **span})
    if kind == "gps":
        zones = 0 if rng.random() < 0.4 else int(rng.integers(1, 3))
        conditions.extend(
            {"type": "exclusion_zone", **span, **_exclusion_zone(rng, home, n)}
            for n in range(zones)
        )
        if rng.random() < 0.12:
            conditions.append({"type": "inclusion_zone", **span, **_inclusion_zone(rng, home)})
    if kind == "alcohol":
        alcohol = "alcohol_abstinence" if rng.random() < 0.7 else "alcohol_monitoring"
        conditions.append({"type": alcohol, **span})
    return conditions


def _curfew(
    b: _Builder,
    order_type: str,
    home: dict[str, Any],
    begin: dt.date,
    starts: dt.datetime,
    span: dict[str, str],
) -> dict[str, Any]:
    rng = b.rng
    week_start, week_end, weekend_start, weekend_end = _pick(rng, TIMETABLES)
    timetable = [
        {
            "day": day,
            "start": weekend_start if day in ("friday", "saturday") else week_start,
            "end": weekend_end if day in ("friday", "saturday") else week_end,
        }
        for day in WEEKDAYS
    ]
    checked_at = rfc3339(starts - dt.timedelta(days=int(rng.integers(2, 30))))
    checks = [
        {
            "kind": check,
            "checked_by": b.officer(),
            "checked_at": checked_at,
            "outcome": "concerns_managed" if rng.random() < 0.12 else "no_concerns",
        }
        for check in ("domestic_abuse", "child_safeguarding")
    ]
    release_day = None
    if order_type in ("home_detention_curfew", "licence"):
        release_day = {"date": begin.isoformat(), "start": "15:00", "end": week_end}
    return {
        "type": "curfew",
        **span,
        "address_ref": home["ref"],
        "timetable": timetable,
        "release_day": release_day,
        "safeguarding_checks": checks,
    }


def _ring(
    rng: np.random.Generator, cx: float, cy: float, radius: float, vertices: int
) -> list[list[float]]:
    """A convex polygon (so always valid) around a centre, closed, in lon/lat."""
    step = 2 * math.pi / vertices  # evenly spread, so the centre is always inside
    angles = np.arange(vertices) * step + rng.uniform(0, 0.4 * step, vertices)
    radii = radius * rng.uniform(0.75, 1.0, vertices)
    points = [
        list(point_lonlat(cx + r * math.cos(a), cy + r * math.sin(a)))
        for a, r in zip(angles, radii, strict=True)
    ]
    return [*points, points[0]]


def _exclusion_zone(rng: np.random.Generator, home: dict[str, Any], n: int) -> dict[str, Any]:
    hx, hy = point_xy(home["lon"], home["lat"])
    distance = rng.uniform(2_500, 8_000)
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = hx + distance * math.cos(angle), hy + distance * math.sin(angle)
    if rng.random() < 0.5:
        lon, lat = point_lonlat(cx, cy)
        geometry: dict[str, Any] = {
            "type": "Circle",
            "coordinates": [lon, lat],
            "radius_m": float(round(rng.uniform(200, 800))),
        }
        name = "Victim's home and street"
    else:
        ring = _ring(rng, cx, cy, rng.uniform(400, 1_500), int(rng.integers(5, 9)))
        geometry = {"type": "Polygon", "coordinates": [_convex_hull(ring)]}
        name = "Town centre"
    schedule = None
    if n == 1 and rng.random() < 0.3:
        schedule = [{"day": "saturday", "start": "12:00", "end": "18:00"}]
    return {"name": f"{name} {n + 1}", "geometry": geometry, "schedule": schedule}


def _inclusion_zone(rng: np.random.Generator, home: dict[str, Any]) -> dict[str, Any]:
    hx, hy = point_xy(home["lon"], home["lat"])
    ring = _ring(rng, hx, hy, rng.uniform(4_000, 7_000), 10)
    schedule = None
    if rng.random() < 0.3:
        schedule = [{"day": day, "start": "07:00", "end": "19:00"} for day in WEEKDAYS[:5]]
    return {
        "name": "Home borough",
        "geometry": {"type": "Polygon", "coordinates": [_convex_hull(ring)]},
        "schedule": schedule,
    }


def _convex_hull(ring: list[list[float]]) -> list[list[float]]:
    """The ring's convex hull, anticlockwise and closed: valid whatever the radii drawn."""
    from shapely.geometry import Polygon

    hull = Polygon(ring).convex_hull
    coords = [[round(x, 6), round(y, 6)] for x, y in hull.exterior.coords]
    return coords
