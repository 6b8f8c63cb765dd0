"""What compliance needs to know about an allocation from the case record.

Reads cases (people, orders, conditions, devices, allocations) and turns its conditions into
what the kernel takes: curfew periods and zone schedules as concrete UTC intervals (Europe/
London, across DST changes, by `tagwatch.cases.timetable`), zones as BNG geometry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Row, Text, cast, or_, select
from sqlalchemy.orm import Session

from tagwatch.cases.models import Address, Allocation, Condition, Device, Order
from tagwatch.cases.timetable import expand
from tagwatch.cases.zones import zones_bng
from tagwatch.compliance.engine import Intervals, LocationSource, ZoneKind
from tagwatch.compliance.repository import earliest_record_ms
from tagwatch.geo.projection import to_bng
from tagwatch.telemetry.epoch import from_ms, to_ms

PeriodsFor = Callable[[dt.datetime, dt.datetime], Intervals]

_LOCATION_SOURCES: dict[str, LocationSource] = {"gps_tag": "gps", "rf_tag": "rf"}
_IDS_PER_QUERY = 500


@dataclass(frozen=True)
class CurfewContext:
    condition_id: int
    lat: float
    lon: float
    periods: PeriodsFor
    # The address on the national grid (metres), as the kernel takes it.
    home_x: float = 0.0
    home_y: float = 0.0


@dataclass(frozen=True)
class ZoneContext:
    condition_id: int
    kind: ZoneKind
    geometry_bng: shapely.Geometry
    schedule: PeriodsFor


@dataclass(frozen=True)
class AllocationContext:
    allocation_id: int
    order_id: int
    person_id: int
    device_type: str
    fitted_at: dt.datetime
    removed_at: dt.datetime | None
    # Rules judge the allocation from here: the later of fitting and the moment tagwatch began
    # watching (the earlier of recording the allocation and the device's first record).
    watched_from: dt.datetime
    curfews: tuple[CurfewContext, ...]
    zones: tuple[ZoneContext, ...]

    @property
    def location_source(self) -> LocationSource:
        return _LOCATION_SOURCES.get(self.device_type, "none")


def load_contexts(session: Session, allocation_ids: Iterable[int]) -> dict[int, AllocationContext]:
    """Each allocation, its device and its order's curfew and zone conditions, in a handful
    of queries (missing ones left out).
    Plain rows, not ORM objects: an evaluation loads hundreds of these every second."""
    ids = sorted(set(allocation_ids))
    rows: list[Row[Any]] = []
    for offset in range(0, len(ids), _IDS_PER_QUERY):
        query = (
            select(
                Allocation.id,
                Allocation.order_id,
                Allocation.person_id,
                Allocation.fitted_at,
                Allocation.removed_at,
                Allocation.recorded_at,
                Device.type,
            )
            .outerjoin(Device, Device.id == Allocation.device_id)
            .where(Allocation.id.in_(ids[offset : offset + _IDS_PER_QUERY]))
        )
        rows.extend(session.execute(query))
    curfews, zones = _conditions(session, sorted({row.order_id for row in rows}))
    first_records = earliest_record_ms(session, [row.id for row in rows])
    return {
        row.id: AllocationContext(
            allocation_id=row.id,
            order_id=row.order_id,
            person_id=row.person_id,
            device_type=row.type or "",
            fitted_at=row.fitted_at,
            removed_at=row.removed_at,
            watched_from=watched_from(row.fitted_at, row.recorded_at, first_records.get(row.id)),
            curfews=tuple(curfews.get(row.order_id, ())),
            zones=tuple(zones.get(row.order_id, ())),
        )
        for row in rows
    }


def _conditions(
    session: Session, order_ids: list[int]
) -> tuple[dict[int, list[CurfewContext]], dict[int, list[ZoneContext]]]:
    """The orders' curfews and zones, by order."""
    curfew_rows: list[Any] = []
    zone_rows: list[Any] = []
    for offset in range(0, len(order_ids), _IDS_PER_QUERY):
        query = (
            select(
                Condition.id,
                Condition.order_id,
                Condition.type,
                Condition.start,
                Condition.end,
                # JSON as its stored text: repeated conditions are decoded, expanded and
                # projected once per process (see `_decoded`, `_projected`).
                cast(Condition.geometry, Text).label("geometry"),
                cast(Condition.timetable, Text).label("timetable"),
                cast(Condition.schedule, Text).label("schedule"),
                cast(Condition.release_day, Text).label("release_day"),
                Address.lat,
                Address.lon,
            )
            .outerjoin(Address, Address.id == Condition.address_id)
            .where(Condition.order_id.in_(order_ids[offset : offset + _IDS_PER_QUERY]))
            .where(Condition.type.in_(["curfew", *_ZONE_KINDS]))
            .order_by(Condition.id)
        )
        for row in session.execute(query):
            if row.type == "curfew" and row.lat is not None:
                curfew_rows.append(row)
            elif row.type in _ZONE_KINDS and _decoded(row.geometry) is not None:
                zone_rows.append(row)
    # One projection call for all the homes and one for all the zones: the fixed cost of a
    # call dominates a single point's or zone's.
    home_x, home_y = to_bng(
        np.array([row.lon for row in curfew_rows], np.float64),
        np.array([row.lat for row in curfew_rows], np.float64),
    )
    curfews: dict[int, list[CurfewContext]] = {}
    for row, x, y in zip(curfew_rows, home_x.tolist(), home_y.tolist(), strict=True):
        curfews.setdefault(row.order_id, []).append(
            CurfewContext(row.id, row.lat, row.lon, curfew_periods(row), x, y)
        )
    zones: dict[int, list[ZoneContext]] = {}
    geometries = _projected([row.geometry for row in zone_rows])
    for row, geometry in zip(zone_rows, geometries, strict=True):
        zones.setdefault(row.order_id, []).append(
            ZoneContext(row.id, _ZONE_KINDS[row.type], geometry, _zone_schedule(row))
        )
    return curfews, zones


def watched_from(
    fitted_at: dt.datetime, recorded_at: dt.datetime, first_ms: int | None
) -> dt.datetime:
    began = recorded_at
    if first_ms is not None:
        began = min(began, from_ms(first_ms))
    return max(fitted_at, began)


_ZONE_KINDS: dict[str, ZoneKind] = {"exclusion_zone": "exclusion", "inclusion_zone": "inclusion"}


def _condition_span(condition: Any) -> Intervals:
    end = to_ms(condition.end) if condition.end is not None else 2**62
    return Intervals.of([(to_ms(condition.start), end)])


def curfew_periods(condition: Any) -> PeriodsFor:
    span = _condition_span(condition)
    expanded = _expansion(condition.timetable, condition.release_day)

    def periods(start: dt.datetime, end: dt.datetime) -> Intervals:
        return expanded(start, end).intersect(span)

    return periods


def _zone_schedule(condition: Any) -> PeriodsFor:
    span = _condition_span(condition)
    if not _decoded(condition.schedule):
        return lambda start, end: span
    expanded = _expansion(condition.schedule, None)

    def schedule(start: dt.datetime, end: dt.datetime) -> Intervals:
        return expanded(start, end).intersect(span)

    return schedule


def _expansion(periods: str | None, release_day: str | None) -> PeriodsFor:
    """A timetable's intervals in [start, end) (periods and release day as JSON text): cut
    from an expansion over whole UTC days, which many evaluations share (expanding across
    DST is far dearer than cutting)."""

    def expanded(start: dt.datetime, end: dt.datetime) -> Intervals:
        first = start.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        last = end.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        whole = _expand_days(periods, release_day, first, last + _DAY)
        return whole.intersect(Intervals(((to_ms(start), to_ms(end)),)))

    return expanded


_DAY = dt.timedelta(days=1)


@lru_cache(maxsize=16384)
def _expand_days(
    periods: str | None, release_day: str | None, start: dt.datetime, end: dt.datetime
) -> Intervals:
    expanded = expand(_decoded(periods) or [], _decoded(release_day), start, end)
    return Intervals.of((to_ms(s), to_ms(e)) for s, e in expanded)


@lru_cache(maxsize=16384)
def _decoded(text: str | None) -> Any:
    """A JSON column's value from its text (shared: read it, never change it)."""
    return None if text is None else json.loads(text)


_PROJECTIONS: dict[str, shapely.Geometry] = {}
_PROJECTIONS_KEPT = 20_000


def _projected(texts: Sequence[str]) -> list[shapely.Geometry]:
    """Zones (GeoJSON text) on the national grid: each new one projected once per process,
    all the new ones of a call in one projection call."""
    missing = sorted({text for text in texts if text not in _PROJECTIONS})
    if missing:
        if len(_PROJECTIONS) + len(missing) > _PROJECTIONS_KEPT:
            _PROJECTIONS.clear()
        fresh = zones_bng([_decoded(text) for text in missing])
        _PROJECTIONS.update(zip(missing, fresh, strict=True))
    return [_PROJECTIONS[text] for text in texts]


def allocation_ids_for_order(session: Session, order_id: int) -> list[int]:
    query = select(Allocation.id).where(Allocation.order_id == order_id).order_by(Allocation.id)
    return list(session.execute(query).scalars())


def active_allocations(session: Session, now: dt.datetime) -> dict[int, tuple[str, dt.datetime]]:
    """Allocations fitted by `now` and not removed before it: (device type, fitted at)."""
    query = (
        select(Allocation.id, Device.type, Allocation.fitted_at)
        .join(Device, Device.id == Allocation.device_id)
        .where(
            Allocation.fitted_at <= now,
            or_(Allocation.removed_at.is_(None), Allocation.removed_at > now),
        )
        .order_by(Allocation.id)
    )
    return {a: (kind, fitted) for a, kind, fitted in session.execute(query)}


def allocation_ids_with_curfew(session: Session, allocation_ids: list[int]) -> list[int]:
    """Those of the allocations whose order has a curfew condition."""
    found: set[int] = set()
    for offset in range(0, len(allocation_ids), 500):
        part = allocation_ids[offset : offset + 500]
        query = (
            select(Allocation.id)
            .join(Condition, Condition.order_id == Allocation.order_id)
            .where(Allocation.id.in_(part), Condition.type == "curfew")
        )
        found.update(session.execute(query).scalars())
    return sorted(found)


def order_exists(session: Session, order_id: int) -> bool:
    return session.get(Order, order_id) is not None


def zone_condition_ids(session: Session, order_id: int) -> set[int]:
    query = select(Condition.id).where(
        Condition.order_id == order_id, Condition.type.in_(list(_ZONE_KINDS))
    )
    return set(session.execute(query).scalars())


def all_allocation_ids(session: Session) -> list[int]:
    return list(session.execute(select(Allocation.id).order_by(Allocation.id)).scalars())
