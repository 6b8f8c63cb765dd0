"""Compliance use cases: evaluate an allocation over a window and reconcile its violations.

Evaluating from a moment `since` re-derives every violation of the allocation that starts
at or after an *owned-from* moment, from all the records from a padded load start onwards:

1. `since` moves back to the start of any standing violation still running at it, and to
   the latest record before it (a gap or an episode that began earlier is re-derived whole);
2. records load from `owned_from - pad` (the rules' look-back), never before fitting;
3. the kernel evaluates at `now`; findings starting at or after `owned_from` are reconciled
   with the stored violations by natural key: new ones are added, changed ones updated, and
   stored ones no longer found are withdrawn. Violations before `owned_from` are untouched.

So evaluation is idempotent, and the stored result for any set of records is the same
however they were split into batches or ordered. Never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from tagwatch.compliance import repository
from tagwatch.compliance.context import (
    AllocationContext,
    active_allocations,
    allocation_ids_for_order,
    allocation_ids_with_curfew,
    load_context,
    order_exists,
    zone_condition_ids,
)
from tagwatch.compliance.engine import (
    AllocationSpec,
    CurfewSpec,
    Finding,
    Fixes,
    Intervals,
    Observation,
    ZoneSpec,
    evaluate,
)
from tagwatch.compliance.events import ViolationsChanged
from tagwatch.compliance.models import AuthorisedAbsence, Violation, ZoneSuspension
from tagwatch.compliance.rules import (
    DEFAULT_PARAMS,
    REPORTING_INTERVAL_SECONDS,
    RULES,
    RuleParams,
)
from tagwatch.compliance.schemas import AbsenceIn, SuspensionIn
from tagwatch.events import publish
from tagwatch.geo.projection import point_to_bng, to_bng
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.repository import last_record_times, load_events, load_fixes

# Records this far before the owned window are loaded too: covers every rule's look-back and
# the grace of episodes that are not stored yet.
EVALUATION_PAD = dt.timedelta(hours=6)
_EXTEND_LIMIT = 20
CLOCK_INTERVAL_SECONDS = 60.0
# Curfews that started this long before the presence deadline are still checked, so a few
# missed runs of the task do not lose a no-presence finding.
CLOCK_CATCH_UP = dt.timedelta(minutes=10)
# Open findings of these rules end when their period ends, with no record to say so.
CLOCK_CLOSED_RULES = ("curfew.no_presence", "curfew.absence.gps", "curfew.absence.rf")


@dataclass
class Changes:
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.opened += other.opened
        self.updated += other.updated
        self.closed += other.closed

    def event(self, evaluated_at: dt.datetime) -> ViolationsChanged:
        return ViolationsChanged(
            sorted(self.opened), sorted(self.updated), sorted(self.closed), evaluated_at
        )


def evaluate_allocation(
    session: Session,
    allocation_id: int,
    since: dt.datetime,
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> Changes:
    """Re-derive the allocation's violations from `since` (extended as described) at `now`."""
    context = load_context(session, allocation_id)
    if context is None:
        return Changes()
    owned_from = _owned_from(session, context, max(since, context.watched_from))
    load_from = max(context.watched_from, owned_from - EVALUATION_PAD)
    findings = evaluate_context(session, context, load_from, now, params)
    return reconcile(session, context, findings, owned_from, now, params)


def evaluate_and_publish(
    session: Session,
    windows: dict[int, dt.datetime],
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> ViolationsChanged:
    """Evaluate several allocations and tell downstream domains what changed."""
    changes = Changes()
    for allocation_id in sorted(windows):
        changes.merge(
            evaluate_allocation(session, allocation_id, windows[allocation_id], now, params)
        )
    event = changes.event(now)
    if event:
        publish(session, event)
    return event


def _owned_from(session: Session, context: AllocationContext, since: dt.datetime) -> dt.datetime:
    """Where the re-derived (owned) part of the allocation's history starts."""
    # A gap that ends inside the window began at the record before it, or at fitting.
    latest_any, latest_fix = repository.latest_record_ms_before(
        session, context.allocation_id, to_ms(since)
    )
    predecessors = [latest_any, latest_fix] if context.location_source == "gps" else [latest_any]
    owned = min(
        [since, *(context.watched_from if ms is None else from_ms(ms) for ms in predecessors)]
    )
    # A violation still standing there is re-derived whole, and so on back.
    for _ in range(_EXTEND_LIMIT):
        running = repository.earliest_overlapping_start(session, context.allocation_id, owned)
        if running is None or running >= owned:
            break
        owned = running
    return max(owned, context.watched_from)


def evaluate_context(
    session: Session,
    context: AllocationContext,
    load_from: dt.datetime,
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> list[Finding]:
    """Load the allocation's records from `load_from` to `now` and run the kernel."""
    allocation_id = context.allocation_id
    table = load_fixes(session, start=load_from, end=now, allocation_ids=[allocation_id])
    x, y = to_bng(table.lon, table.lat)
    fixes = Fixes(
        allocation_id=table.allocation_id,
        record_id=table.record_id,
        t_ms=table.t_ms,
        x=x,
        y=y,
        accuracy_m=table.accuracy_m,
    ).sorted()
    events = load_events(session, allocation_id=allocation_id, start=load_from, end=now)
    # Observations are numbered negatively so evidence can hold fixes and events apart.
    # Observations are numbered negatively so evidence can hold fixes and events apart.
    observations = [Observation(-e.record_id, to_ms(e.t), e.type, e.fields) for e in events]
    carried = repository.latest_event_before(session, allocation_id, "rf", load_from)
    if carried is not None:
        observations.insert(
            0, Observation(-carried.id, carried.t_ms, carried.type, dict(carried.payload))
        )
    prior_any, prior_fix = repository.latest_record_ms_before(
        session, allocation_id, to_ms(load_from)
    )
    spec = build_spec(session, context, load_from, now, observations, prior_any, prior_fix)
    return evaluate([spec], fixes, params, to_ms(now))


def build_spec(
    session: Session,
    context: AllocationContext,
    start: dt.datetime,
    end: dt.datetime,
    observations: Sequence[Observation],
    prior_record_ms: int | None,
    prior_fix_ms: int | None,
) -> AllocationSpec:
    """The kernel's view of an allocation: conditions as intervals and BNG geometry."""
    span_end = end + dt.timedelta(days=2)
    span_start = start - dt.timedelta(days=2)
    absences = Intervals.of(
        (to_ms(a.start), to_ms(a.end))
        for a in repository.absences_for_order(session, context.order_id, span_start, span_end)
    )
    suspended: dict[int, list[tuple[int, int]]] = {}
    for s in repository.suspensions_for_order(session, context.order_id, span_start, span_end):
        suspended.setdefault(s.condition_id, []).append((to_ms(s.start), to_ms(s.end)))
    curfews = []
    for curfew in context.curfews:
        hx, hy = point_to_bng(curfew.lon, curfew.lat)
        curfews.append(
            CurfewSpec(curfew.condition_id, hx, hy, curfew.periods(span_start, span_end))
        )
    zones = [
        ZoneSpec(
            zone.condition_id,
            zone.kind,
            zone.geometry_bng,
            zone.schedule(span_start, span_end),
            Intervals.of(suspended.get(zone.condition_id, [])),
        )
        for zone in context.zones
    ]
    removed = to_ms(context.removed_at) if context.removed_at is not None else None
    active = Intervals.of([(to_ms(context.watched_from), removed or 2**62)])
    return AllocationSpec(
        allocation_id=context.allocation_id,
        active=active,
        location_source=context.location_source,
        reporting_interval_s=REPORTING_INTERVAL_SECONDS.get(context.device_type, 60.0),
        curfews=tuple(curfews),
        zones=tuple(zones),
        absences=absences,
        observations=tuple(observations),
        prior_record_ms=prior_record_ms,
        prior_fix_ms=prior_fix_ms,
    )


def reconcile(
    session: Session,
    context: AllocationContext,
    findings: Iterable[Finding],
    owned_from: dt.datetime,
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> Changes:
    """Make the stored violations from `owned_from` on exactly the findings given."""
    owned_ms = to_ms(owned_from)
    produced = {f.key[1:]: f for f in findings if f.start_ms >= owned_ms}
    existing = {
        (v.rule_id, v.condition_key, to_ms(v.start)): v
        for v in repository.violations_from(session, context.allocation_id, owned_from)
    }
    changes = Changes()
    fresh: list[Violation] = []
    for key, finding in sorted(produced.items()):
        row = existing.get(key)
        if row is None:
            row = Violation(
                allocation_id=context.allocation_id,
                order_id=context.order_id,
                person_id=context.person_id,
                condition_key=finding.condition_id or 0,
                rule_id=finding.rule_id,
                start=from_ms(finding.start_ms),
                first_found_at=now,
            )
            _apply(row, finding, params, now)
            repository.add(session, row)
            fresh.append(row)
            continue
        was_withdrawn = row.withdrawn_at is not None
        changed = _apply(row, finding, params, now)
        row.withdrawn_at = None
        if was_withdrawn:
            changes.opened.append(row.id)
        elif changed:
            changes.updated.append(row.id)
    for key, row in existing.items():
        if key not in produced and row.withdrawn_at is None:
            row.withdrawn_at = now
            row.evaluated_at = now
            changes.closed.append(row.id)
    repository.flush(session)
    changes.opened += [row.id for row in fresh]
    return changes


def _apply(row: Violation, finding: Finding, params: RuleParams, now: dt.datetime) -> bool:
    """Copy a finding onto a stored violation; True when anything it shows changed."""
    rule = RULES[finding.rule_id]
    values = {
        "end": None if finding.end_ms is None else from_ms(finding.end_ms),
        "rule_version": finding.rule_version,
        "rule_set_version": params.version,
        "severity": rule.severity,
        "status": finding.status,
        "needs_review": rule.needs_review,
        "evidence_fixes": sorted(i for i in finding.evidence if i > 0),
        "evidence_events": sorted(-i for i in finding.evidence if i < 0),
    }
    changed = False
    for name, value in values.items():
        if getattr(row, name, None) != value:
            setattr(row, name, value)
            changed = True
    row.evaluated_at = now
    return changed


def standing(session: Session, allocation_id: int) -> list[Violation]:
    return repository.standing_violations(session, allocation_id)


# --- clock-fired rules ----------------------------------------------------------------------


def evaluate_clock_rules(
    session: Session, now: dt.datetime, params: RuleParams = DEFAULT_PARAMS
) -> ViolationsChanged:
    """Re-evaluate the allocations where time alone may have changed a finding at `now`.

    Those are: devices silent for longer than their reporting interval plus the buffer
    (loss of communication), curfews that started within the presence grace (no evidence of
    presence), and allocations with a curfew finding still open (its period may have ended).
    """
    recent = now - dt.timedelta(seconds=params.presence_grace_seconds) - CLOCK_CATCH_UP
    windows: dict[int, dt.datetime] = {}
    active = active_allocations(session, now)
    latest = last_record_times(session, list(active))
    already_silent = {
        v.allocation_id
        for v in repository.open_violations(session, ("device.loss_of_communication",))
    }
    for allocation_id, (device_type, fitted_at) in active.items():
        silent_for = REPORTING_INTERVAL_SECONDS.get(device_type, 60.0) + (
            params.communication_buffer_seconds
        )
        last_any = latest.get(allocation_id, (None, None))[0]
        silent = last_any is None or (now - last_any).total_seconds() > silent_for
        if silent and allocation_id not in already_silent:
            windows[allocation_id] = min(last_any or fitted_at, now)
    for allocation_id in allocation_ids_with_curfew(session, list(active)):
        context = load_context(session, allocation_id)
        if context is None:
            continue
        for curfew in context.curfews:
            periods = curfew.periods(recent - dt.timedelta(days=1), now)
            if any(to_ms(recent) <= start <= to_ms(now) for start, _ in periods.spans):
                windows[allocation_id] = min(windows.get(allocation_id, now), recent)
    for violation in repository.open_violations(session, CLOCK_CLOSED_RULES):
        current = windows.get(violation.allocation_id, now)
        windows[violation.allocation_id] = min(current, violation.start)
    return evaluate_and_publish(session, windows, now, params)


# --- authorised absences and zone suspensions -----------------------------------------------


def record_absence(
    session: Session, data: AbsenceIn, recorded_by: str, now: dt.datetime
) -> AuthorisedAbsence:
    """Record an authorised absence and re-derive the order's violations over it."""
    _require_order(session, data.order_id)
    absence = AuthorisedAbsence(
        order_id=data.order_id,
        start=data.start,
        end=data.end,
        reason=data.reason,
        recorded_by=recorded_by,
        recorded_at=now,
    )
    repository.add(session, absence)
    repository.flush(session)
    reevaluate_order(session, data.order_id, data.start, now)
    return absence


def record_suspension(
    session: Session, data: SuspensionIn, recorded_by: str, now: dt.datetime
) -> ZoneSuspension:
    """Suspend one zone condition for a period and re-derive the order's violations over it."""
    _require_order(session, data.order_id)
    if data.condition_id not in zone_condition_ids(session, data.order_id):
        raise ComplianceInputError("condition_id", "is not a zone condition of this order")
    suspension = ZoneSuspension(
        order_id=data.order_id,
        condition_id=data.condition_id,
        start=data.start,
        end=data.end,
        reason=data.reason,
        recorded_by=recorded_by,
        recorded_at=now,
    )
    repository.add(session, suspension)
    repository.flush(session)
    reevaluate_order(session, data.order_id, data.start, now)
    return suspension


def cancel_excusal(
    session: Session,
    row: AuthorisedAbsence | ZoneSuspension,
    cancelled_by: str,
    now: dt.datetime,
) -> None:
    if row.cancelled_at is not None:
        raise ComplianceInputError("id", "is already cancelled")
    row.cancelled_at = now
    row.cancelled_by = cancelled_by
    repository.flush(session)
    reevaluate_order(session, row.order_id, row.start, now)


def reevaluate_order(
    session: Session, order_id: int, since: dt.datetime, now: dt.datetime
) -> ViolationsChanged:
    windows = {
        allocation_id: since for allocation_id in allocation_ids_for_order(session, order_id)
    }
    return evaluate_and_publish(session, windows, now)


class ComplianceInputError(ValueError):
    """Bad input, naming the field and the reason."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field_name = field_name
        self.reason = reason


def _require_order(session: Session, order_id: int) -> None:
    if not order_exists(session, order_id):
        raise ComplianceInputError("order_id", f"no order {order_id}")
