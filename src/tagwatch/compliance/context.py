"""What compliance needs to know about an allocation from the case record.

Reads cases (people, orders, conditions, devices, allocations) and turns its conditions into
what the kernel takes: curfew periods and zone schedules as concrete UTC intervals (Europe/
London, across DST changes, by `tagwatch.cases.timetable`), zones as BNG geometry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import shapely
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from tagwatch.cases.models import Allocation, Condition, Device, Order
from tagwatch.cases.timetable import expand
from tagwatch.cases.zones import zones_bng
from tagwatch.compliance.engine import Intervals, LocationSource, ZoneKind
from tagwatch.compliance.repository import earliest_record_ms
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


def load_context(session: Session, allocation_id: int) -> AllocationContext | None:
    """The allocation, its device and its order's curfew and zone conditions."""
    return load_contexts(session, [allocation_id]).get(allocation_id)


def load_contexts(session: Session, allocation_ids: Iterable[int]) -> dict[int, AllocationContext]:
    """`load_context` for many allocations in a handful of queries (missing ones left out)."""
    ids = sorted(set(allocation_ids))
    rows: list[tuple[Allocation, str | None]] = []
    for offset in range(0, len(ids), _IDS_PER_QUERY):
        query = (
            select(Allocation, Device.type)
            .outerjoin(Device, Device.id == Allocation.device_id)
            .where(Allocation.id.in_(ids[offset : offset + _IDS_PER_QUERY]))
        )
        rows.extend((allocation, kind) for allocation, kind in session.execute(query).all())
    curfews, zones = _conditions(session, sorted({allocation.order_id for allocation, _ in rows}))
    first_records = earliest_record_ms(session, [allocation.id for allocation, _ in rows])
    return {
        allocation.id: AllocationContext(
            allocation_id=allocation.id,
            order_id=allocation.order_id,
            person_id=allocation.person_id,
            device_type=device_type or "",
            fitted_at=allocation.fitted_at,
            removed_at=allocation.removed_at,
            watched_from=_watched_from(allocation, first_records.get(allocation.id)),
            curfews=tuple(curfews.get(allocation.order_id, ())),
            zones=tuple(zones.get(allocation.order_id, ())),
        )
        for allocation, device_type in rows
    }


def _conditions(
    session: Session, order_ids: list[int]
) -> tuple[dict[int, list[CurfewContext]], dict[int, list[ZoneContext]]]:
    """The orders' curfews and zones, by order."""
    curfews: dict[int, list[CurfewContext]] = {}
    zone_conditions: list[Condition] = []
    for offset in range(0, len(order_ids), _IDS_PER_QUERY):
        query = (
            select(Condition)
            .where(Condition.order_id.in_(order_ids[offset : offset + _IDS_PER_QUERY]))
            .options(selectinload(Condition.address))
            .order_by(Condition.id)
        )
        for condition in session.execute(query).scalars():
            if condition.type == "curfew" and condition.address is not None:
                curfews.setdefault(condition.order_id, []).append(
                    CurfewContext(
                        condition.id,
                        condition.address.lat,
                        condition.address.lon,
                        _curfew_periods(condition),
                    )
                )
            elif condition.type in _ZONE_KINDS and condition.geometry is not None:
                zone_conditions.append(condition)
    zones: dict[int, list[ZoneContext]] = {}
    # One projection call for every zone: its fixed cost dominates a single zone's.
    geometries = zones_bng([condition.geometry or {} for condition in zone_conditions])
    for condition, geometry in zip(zone_conditions, geometries, strict=True):
        zones.setdefault(condition.order_id, []).append(
            ZoneContext(
                condition.id, _ZONE_KINDS[condition.type], geometry, _zone_schedule(condition)
            )
        )
    return curfews, zones


def _watched_from(allocation: Allocation, first_ms: int | None) -> dt.datetime:
    began = allocation.recorded_at
    if first_ms is not None:
        began = min(began, from_ms(first_ms))
    return max(allocation.fitted_at, began)


_ZONE_KINDS: dict[str, ZoneKind] = {"exclusion_zone": "exclusion", "inclusion_zone": "inclusion"}


def _condition_span(condition: Condition) -> Intervals:
    end = to_ms(condition.end) if condition.end is not None else 2**62
    return Intervals.of([(to_ms(condition.start), end)])


def _as_intervals(pairs: Iterable[tuple[dt.datetime, dt.datetime]]) -> Intervals:
    return Intervals.of((to_ms(start), to_ms(end)) for start, end in pairs)


def _curfew_periods(condition: Condition) -> PeriodsFor:
    span = _condition_span(condition)

    def periods(start: dt.datetime, end: dt.datetime) -> Intervals:
        expanded = expand(condition.timetable or [], condition.release_day, start, end)
        return _as_intervals(expanded).intersect(span)

    return periods


def _zone_schedule(condition: Condition) -> PeriodsFor:
    span = _condition_span(condition)

    def schedule(start: dt.datetime, end: dt.datetime) -> Intervals:
        if not condition.schedule:
            return span
        return _as_intervals(expand(condition.schedule, None, start, end)).intersect(span)

    return schedule


def allocation_ids_for_order(session: Session, order_id: int) -> list[int]:
    query = select(Allocation.id).where(Allocation.order_id == order_id).order_by(Allocation.id)
    return list(session.execute(query).scalars())


def allocation_ids_for_person(session: Session, person_id: int) -> list[int]:
    query = select(Allocation.id).where(Allocation.person_id == person_id).order_by(Allocation.id)
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
