"""A person's compliance over a period, for the practitioner's portal."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.orm import Session

from tagwatch.cases.models import Address, Allocation, Condition
from tagwatch.compliance import repository
from tagwatch.compliance.context import PeriodsFor, curfew_periods, watched_from
from tagwatch.compliance.engine import Intervals
from tagwatch.compliance.repository import ViolationRow, earliest_record_ms
from tagwatch.compliance.schemas import ComplianceSummary, CurfewHours
from tagwatch.telemetry.epoch import to_ms

LONDON = ZoneInfo("Europe/London")
CURFEW_BREACH_RULES = ("curfew.absence.gps", "curfew.absence.rf", "curfew.no_presence")
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class _Curfew:
    condition_id: int
    periods: PeriodsFor


@dataclass(frozen=True)
class _Watched:
    """What the summary needs of an allocation: `AllocationContext` without the zones (and
    their projection to the national grid) or the device, which hours of curfew never need."""

    order_id: int
    removed_at: dt.datetime | None
    watched_from: dt.datetime
    curfews: tuple[_Curfew, ...]


_ALLOCATIONS = (
    select(
        Allocation.id,
        Allocation.order_id,
        Allocation.fitted_at,
        Allocation.removed_at,
        Allocation.recorded_at,
    )
    .where(Allocation.person_id == bindparam("person_id"))
    .order_by(Allocation.id)
)
# Curfews at an address with a position, as the compliance context takes them.
_CURFEWS = (
    select(
        Condition.id,
        Condition.order_id,
        Condition.start,
        Condition.end,
        cast(Condition.timetable, Text).label("timetable"),
        cast(Condition.release_day, Text).label("release_day"),
    )
    .join(Address, Address.id == Condition.address_id)
    .where(
        Condition.order_id.in_(bindparam("order_ids", expanding=True)),
        Condition.type == "curfew",
        Address.lat.is_not(None),
    )
    .order_by(Condition.id)
)


def _watched_allocations(session: Session, person_id: int) -> list[_Watched]:
    """The person's allocations, by id, each with its order's curfews (plain rows)."""
    connection = session.connection()
    allocations = connection.execute(_ALLOCATIONS, {"person_id": person_id}).all()
    if not allocations:
        return []
    curfews: dict[int, list[_Curfew]] = {}
    order_ids = sorted({row.order_id for row in allocations})
    for row in connection.execute(_CURFEWS, {"order_ids": order_ids}):
        curfews.setdefault(row.order_id, []).append(_Curfew(row.id, curfew_periods(row)))
    first_records = earliest_record_ms(session, [row.id for row in allocations])
    return [
        _Watched(
            order_id=row.order_id,
            removed_at=row.removed_at,
            watched_from=watched_from(row.fitted_at, row.recorded_at, first_records.get(row.id)),
            curfews=tuple(curfews.get(row.order_id, ())),
        )
        for row in allocations
    ]


def compliance_summary(
    session: Session,
    person_id: int,
    start: dt.datetime,
    end: dt.datetime,
    violations: Sequence[ViolationRow] | None = None,
) -> ComplianceSummary:
    """Curfew hours scheduled, excused, kept and absent; violations by type and day.

    Hours are counted once per curfew condition even when two devices watch it. An open
    violation counts as absence up to when it was last evaluated, not into the future.
    `violations`: the person's since `start` (`repository.person_violations_since`), when
    the caller has them already.
    """
    window = Intervals.of([(to_ms(start), to_ms(end))])
    scheduled: dict[int, Intervals] = {}
    excused: dict[int, Intervals] = {}
    absent: dict[int, Intervals] = defaultdict(Intervals)
    # Every allocation's curfews and every order's absences at once, not a round per allocation.
    watched = _watched_allocations(session, person_id)
    absences_by_order = repository.absences_for_orders(
        session, {w.order_id for w in watched}, start, end
    )
    for allocation in watched:
        removed = to_ms(allocation.removed_at) if allocation.removed_at else 2**62
        active = Intervals.of([(to_ms(allocation.watched_from), removed)]).intersect(window)
        absences = Intervals.of(
            (to_ms(a.start), to_ms(a.end)) for a in absences_by_order.get(allocation.order_id, [])
        )
        for curfew in allocation.curfews:
            periods = curfew.periods(start, end).intersect(active)
            cid = curfew.condition_id
            union = scheduled.get(cid, Intervals())
            scheduled[cid] = Intervals.of([*union.spans, *periods.spans])
            excused[cid] = scheduled[cid].intersect(absences)
    if violations is None:
        violations = repository.person_violations_since(session, person_id, start)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    confirmed: Counter[str] = Counter()
    possible: Counter[str] = Counter()
    for v in violations:
        if v.start >= end:
            continue
        (confirmed if v.status == "confirmed" else possible)[v.rule_id] += 1
        if v.status == "confirmed":
            by_day[v.start.astimezone(LONDON).date().isoformat()][v.rule_id] += 1
            if v.rule_id in CURFEW_BREACH_RULES and v.condition_key in scheduled:
                until = v.end or v.evaluated_at
                spans = absent[v.condition_key].spans
                absent[v.condition_key] = Intervals.of([*spans, (to_ms(v.start), to_ms(until))])
    total = sum(s.total_ms() for s in scheduled.values())
    excused_ms = sum(e.total_ms() for e in excused.values())
    absent_ms = sum(
        absent[cid].intersect(scheduled[cid].subtract(excused[cid])).total_ms() for cid in scheduled
    )
    return ComplianceSummary(
        person_id=person_id,
        start=start,
        end=end,
        curfew=CurfewHours(
            scheduled_hours=round(total / _HOUR_MS, 3),
            kept_hours=round((total - excused_ms - absent_ms) / _HOUR_MS, 3),
            absent_hours=round(absent_ms / _HOUR_MS, 3),
            excused_hours=round(excused_ms / _HOUR_MS, 3),
        ),
        violations_by_day={day: dict(counts) for day, counts in sorted(by_day.items())},
        possible_by_rule=dict(possible),
        confirmed_by_rule=dict(confirmed),
    )
