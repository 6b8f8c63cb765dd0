"""A person's compliance over a period, for the practitioner's portal."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tagwatch.compliance import repository
from tagwatch.compliance.context import allocation_ids_for_person, load_contexts
from tagwatch.compliance.engine import Intervals
from tagwatch.compliance.schemas import ComplianceSummary, CurfewHours
from tagwatch.telemetry.epoch import to_ms

LONDON = ZoneInfo("Europe/London")
CURFEW_BREACH_RULES = ("curfew.absence.gps", "curfew.absence.rf", "curfew.no_presence")
_HOUR_MS = 3_600_000


def compliance_summary(
    session: Session, person_id: int, start: dt.datetime, end: dt.datetime
) -> ComplianceSummary:
    """Curfew hours scheduled, excused, kept and absent; violations by type and day.

    Hours are counted once per curfew condition even when two devices watch it. An open
    violation counts as absence up to when it was last evaluated, not into the future.
    """
    window = Intervals.of([(to_ms(start), to_ms(end))])
    scheduled: dict[int, Intervals] = {}
    excused: dict[int, Intervals] = {}
    absent: dict[int, Intervals] = defaultdict(Intervals)
    # Every allocation's context and every order's absences at once, not a round per allocation.
    contexts = load_contexts(session, allocation_ids_for_person(session, person_id))
    absences_by_order = repository.absences_for_orders(
        session, {c.order_id for c in contexts.values()}, start, end
    )
    for _allocation_id, context in sorted(contexts.items()):
        removed = to_ms(context.removed_at) if context.removed_at else 2**62
        active = Intervals.of([(to_ms(context.watched_from), removed)]).intersect(window)
        absences = Intervals.of(
            (to_ms(a.start), to_ms(a.end)) for a in absences_by_order.get(context.order_id, [])
        )
        for curfew in context.curfews:
            periods = curfew.periods(start, end).intersect(active)
            cid = curfew.condition_id
            union = scheduled.get(cid, Intervals())
            scheduled[cid] = Intervals.of([*union.spans, *periods.spans])
            excused[cid] = scheduled[cid].intersect(absences)
    query = repository.violation_query(person_id=person_id, start=start, end=end)
    violations = repository.find_violations(session, query, limit=100_000, offset=0)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    confirmed: Counter[str] = Counter()
    possible: Counter[str] = Counter()
    for v in violations:
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
