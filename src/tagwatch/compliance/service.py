"""Compliance use cases: evaluate an allocation over a window and reconcile its violations.

Evaluating from a moment `since` re-derives every violation of the allocation that starts
at or after an *owned-from* moment, from all the records from a padded load start onwards:

1. `since` moves back to the latest record before it (a gap that ends inside the window is
   re-derived whole), and then, rule by rule, to the start of any standing violation of that
   rule still running there (curfew absences also by their grace: one too short to be
   stored yet is re-derived whole once it outlasts it);
2. records load from `owned_from - pad` (the rules' look-back), never before fitting;
3. the kernel evaluates at `now`; for each rule, findings starting at or after its
   `owned_from` are reconciled with the stored violations by natural key: new ones are
   added, changed ones updated, and stored ones no longer found are withdrawn. Violations
   before `owned_from` are untouched.

When records arrive, only the rules that read a kind of record among them are re-derived
(`Rule.reads`): the others' violations cannot have changed. So a fix leaves a battery
episode standing for days alone, and evaluating one new record costs a short window, not
the history behind every open violation.

So evaluation is idempotent, and the stored result for any set of records is the same
however they were split into batches or ordered. Violation changes are written with a few
bulk statements per group of allocations. Never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.compliance import repository
from tagwatch.compliance.context import (
    AllocationContext,
    active_allocations,
    allocation_ids_for_order,
    allocation_ids_with_curfew,
    load_contexts,
    order_exists,
    zone_condition_ids,
)
from tagwatch.compliance.engine import (
    OBSERVATION_TYPES,
    OBSERVED_FIELDS,
    AllocationSpec,
    CurfewSpec,
    Finding,
    Fixes,
    Intervals,
    Observation,
    Observations,
    ZoneSpec,
    evaluate,
)
from tagwatch.compliance.events import ViolationsChanged
from tagwatch.compliance.models import AuthorisedAbsence, Violation, ZoneSuspension
from tagwatch.compliance.rules import (
    ALL_RECORDS,
    DEFAULT_PARAMS,
    REPORTING_INTERVAL_SECONDS,
    RULES,
    RuleParams,
)
from tagwatch.compliance.schemas import AbsenceIn, SuspensionIn
from tagwatch.events import publish
from tagwatch.geo.projection import to_bng
from tagwatch.settings import settings_of
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.repository import (
    PayloadField,
    RecordsBefore,
    events_by_id,
    last_record_times,
    load_events_from,
    load_fixes_from,
)

# Records this far before the owned window are loaded too: covers every rule's look-back
# (30 minutes) and the grace of episodes too short to be stored yet (5 minutes), with room
# for clock skew. Episodes that are stored move the owned window back themselves, so this
# need not reach back to their start; a longer pad only costs time.
EVALUATION_PAD = dt.timedelta(hours=1)
_EXTEND_LIMIT = 20
# Allocations evaluated together: one kernel run, a handful of queries.
EVALUATION_GROUP = 500
# Conditions are expanded into intervals this far either side of the records loaded.
SPEC_MARGIN = dt.timedelta(days=2)
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
    return evaluate_allocations(session, {allocation_id: since}, now, params)


def evaluate_and_publish(
    session: Session,
    windows: Mapping[int, dt.datetime],
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
    *,
    records_only: Collection[int] = (),
) -> ViolationsChanged:
    """Evaluate several allocations and tell downstream domains what changed (one event)."""
    changes = evaluate_allocations(session, windows, now, params, records_only=records_only)
    event = changes.event(now)
    if event:
        publish(session, event)
    return event


# Per allocation: the rules re-derived, each from where its owned history starts.
Owned = dict[int, dict[str, dt.datetime]]
# Stands for rules no longer in the catalogue: their stored violations are withdrawn when an
# allocation is re-derived in full.
_ANY_RULE = "*"


def evaluate_allocations(
    session: Session,
    windows: Mapping[int, dt.datetime],
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
    *,
    records_only: Collection[int] = (),
) -> Changes:
    """Re-derive the violations of each allocation from its `since` at `now`: one kernel run
    and a handful of queries per group of allocations, not a round of queries for each.

    `records_only`: allocations asked for only because records arrived. Of those, only the
    rules that read a kind of record observed from `since` on are re-derived; the others'
    violations cannot have changed (a new fix leaves a standing battery episode as it is, so
    it need not be re-derived from its start)."""
    changes = Changes()
    ids = sorted(windows)
    narrowed = set(records_only)
    for offset in range(0, len(ids), EVALUATION_GROUP):
        group = {a: windows[a] for a in ids[offset : offset + EVALUATION_GROUP]}
        contexts = load_contexts(session, group)
        if not contexts:
            continue
        since = {a: max(group[a], c.watched_from) for a, c in contexts.items()}
        # Records that reach the start of watching move it: everything is re-derived.
        partial = {
            a: since[a] for a, c in contexts.items() if a in narrowed and group[a] > c.watched_from
        }
        rules = _rules_to_derive(session, since, partial)
        owned = _owned_from(session, contexts, since, rules, _grace_reach(session, params))
        if not owned:
            continue
        load_from = {
            a: max(contexts[a].watched_from, min(by_rule.values()) - EVALUATION_PAD)
            for a, by_rule in owned.items()
        }
        evaluated = {a: contexts[a] for a in owned}
        findings = evaluate_contexts(session, evaluated, load_from, now, params)
        changes.merge(reconcile(session, evaluated, findings, owned, now, params))
    return changes


def _rules_to_derive(
    session: Session, since: Mapping[int, dt.datetime], partial: Mapping[int, dt.datetime]
) -> dict[int, tuple[str, ...]]:
    """Per allocation: the rules to re-derive (all of them, unless it is in `partial`)."""
    everything = (*RULES, _ANY_RULE)
    kinds = repository.record_kinds_since(session, partial) if partial else {}
    chosen: dict[int, tuple[str, ...]] = {}
    for allocation_id in since:
        if allocation_id not in partial:
            chosen[allocation_id] = everything
            continue
        present = kinds.get(allocation_id, set())
        if not present <= ALL_RECORDS:  # a kind of record no rule names: be safe
            chosen[allocation_id] = everything
            continue
        rules = tuple(rule_id for rule_id, rule in RULES.items() if rule.reads & present)
        if rules:
            chosen[allocation_id] = rules
    return chosen


# Absences shorter than the grace are not stored, so no standing violation moves the owned
# window back to one still running when the next record arrives: these rules own their
# history from further back (`_grace_reach`), and such an absence is found whole, from its
# first fix, once it outlasts the grace.
_GRACE_RULES = ("curfew.absence.gps", "curfew.absence.rf")


def _grace_reach(session: Session, params: RuleParams) -> dt.timedelta:
    """How far before the latest record an absence not stored yet can have begun: the grace,
    plus the skew that lets a record's time run ahead of the moment it was evaluated at."""
    skew = settings_of(session).clock_skew_seconds
    return dt.timedelta(seconds=params.curfew_grace_seconds + skew)


def _owned_from(
    session: Session,
    contexts: Mapping[int, AllocationContext],
    since: Mapping[int, dt.datetime],
    rules: Mapping[int, Sequence[str]],
    grace_reach: dt.timedelta,
) -> Owned:
    """Where the re-derived (owned) part of each allocation's history starts, per rule."""
    # A gap that ends inside the window began at the record before it, or at fitting.
    before = repository.latest_records_before(session, {a: since[a] for a in rules})
    owned: Owned = {}
    for allocation_id, chosen in rules.items():
        context = contexts[allocation_id]
        latest = before.get(allocation_id)
        predecessors = [None, None] if latest is None else [latest.any_ms, latest.fix_ms]
        if context.location_source != "gps":
            predecessors = predecessors[:1]
        start = min(
            [
                since[allocation_id],
                *(context.watched_from if ms is None else from_ms(ms) for ms in predecessors),
            ]
        )
        owned[allocation_id] = dict.fromkeys(chosen, start)
        for rule_id in _GRACE_RULES:
            if rule_id in owned[allocation_id]:
                owned[allocation_id][rule_id] = start - grace_reach
    # A violation of a rule still standing there is re-derived whole, and so on back.
    moving = {a: dict(by_rule) for a, by_rule in owned.items()}
    for _ in range(_EXTEND_LIMIT):
        standing = repository.standing_since(
            session, {a: min(by_rule.values()) for a, by_rule in moving.items()}
        )
        moved: Owned = {}
        for allocation_id, by_rule in moving.items():
            for rule_id, start, end in standing.get(allocation_id, ()):
                at = moved.get(allocation_id, {}).get(rule_id, by_rule.get(rule_id))
                if at is not None and start < at and (end is None or end >= by_rule[rule_id]):
                    moved.setdefault(allocation_id, {})[rule_id] = start
        if not moved:
            break
        for allocation_id, by_rule in moved.items():
            owned[allocation_id].update(by_rule)
        moving = moved
    return {
        a: {rule_id: max(at, contexts[a].watched_from) for rule_id, at in by_rule.items()}
        for a, by_rule in owned.items()
    }


def evaluate_contexts(
    session: Session,
    contexts: Mapping[int, AllocationContext],
    load_from: Mapping[int, dt.datetime],
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> list[Finding]:
    """Load each allocation's records from its `load_from` to `now` and run the kernel once
    over all of them."""
    starts = {a: to_ms(moment) for a, moment in load_from.items()}
    now_ms = to_ms(now)
    table = load_fixes_from(session, starts, now_ms)
    x, y = to_bng(table.lon, table.lat)
    # Loaded in the kernel's order already: (allocation, time, record).
    fixes = Fixes(
        allocation_id=table.allocation_id,
        record_id=table.record_id,
        t_ms=table.t_ms,
        x=x,
        y=y,
        accuracy_m=table.accuracy_m,
    )
    priors = repository.latest_records_before(session, load_from, rf=True)
    observations = _observations(session, starts, now_ms, priors)
    excusals = _Excusals.load(session, contexts.values(), load_from, now)
    specs = []
    for allocation_id, context in sorted(contexts.items()):
        prior = priors.get(allocation_id)
        specs.append(
            build_spec(
                context,
                load_from[allocation_id],
                now,
                None if prior is None else prior.any_ms,
                None if prior is None else prior.fix_ms,
                excusals,
            )
        )
    return evaluate(specs, fixes, params, now_ms, observations=observations)


def _observations(
    session: Session,
    starts: Mapping[int, int],
    now_ms: int,
    priors: Mapping[int, RecordsBefore],
) -> Observations:
    """The allocations' non-GPS records from their starts as columns, each with its latest
    RF record before the start (a state out of range carries into a curfew). Observations
    are numbered negatively, so evidence can hold fixes and events apart."""
    fields = [PayloadField(*f) for f in OBSERVED_FIELDS]
    table = load_events_from(session, starts, now_ms, OBSERVATION_TYPES, fields)
    loaded = Observations(
        table.allocation_id, -table.record_id, table.t_ms, table.type, table.fields
    )
    carried = events_by_id(session, [p.rf_id for p in priors.values() if p.rf_id])
    return Observations.concat(
        [
            loaded,
            Observations.of(
                (row.allocation_id, Observation(-row.record_id, row.t_ms, row.type, row.fields))
                for row in carried
            ),
        ]
    )


@dataclass
class _Excusals:
    """Authorised absences and zone suspensions of the orders being evaluated."""

    absences: dict[int, list[AuthorisedAbsence]]
    suspensions: dict[int, list[ZoneSuspension]]

    @staticmethod
    def load(
        session: Session,
        contexts: Iterable[AllocationContext],
        load_from: Mapping[int, dt.datetime],
        now: dt.datetime,
    ) -> _Excusals:
        contexts = list(contexts)
        orders = {c.order_id for c in contexts}
        start = min(load_from[c.allocation_id] for c in contexts) - SPEC_MARGIN
        end = now + SPEC_MARGIN
        return _Excusals(
            repository.absences_for_orders(session, orders, start, end),
            repository.suspensions_for_orders(session, orders, start, end),
        )


def build_spec(
    context: AllocationContext,
    start: dt.datetime,
    end: dt.datetime,
    prior_record_ms: int | None,
    prior_fix_ms: int | None,
    excusals: _Excusals,
) -> AllocationSpec:
    """The kernel's view of an allocation: conditions as intervals and BNG geometry."""
    span_end = end + SPEC_MARGIN
    span_start = start - SPEC_MARGIN
    absences = Intervals.of(
        (to_ms(a.start), to_ms(a.end))
        for a in excusals.absences.get(context.order_id, ())
        if a.end > span_start and a.start < span_end
    )
    suspended: dict[int, list[tuple[int, int]]] = {}
    for s in excusals.suspensions.get(context.order_id, ()):
        if s.end > span_start and s.start < span_end:
            suspended.setdefault(s.condition_id, []).append((to_ms(s.start), to_ms(s.end)))
    curfews = []
    for curfew in context.curfews:
        curfews.append(
            CurfewSpec(
                curfew.condition_id,
                curfew.home_x,
                curfew.home_y,
                curfew.periods(span_start, span_end),
            )
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
        prior_record_ms=prior_record_ms,
        prior_fix_ms=prior_fix_ms,
    )


def reconcile(
    session: Session,
    contexts: Mapping[int, AllocationContext],
    findings: Iterable[Finding],
    owned_from: Mapping[int, Mapping[str, dt.datetime]],
    now: dt.datetime,
    params: RuleParams = DEFAULT_PARAMS,
) -> Changes:
    """Make the stored violations of each allocation and rule in `owned_from`, from where
    that rule's owned history starts, exactly the findings given: compared as plain rows,
    written as a few bulk statements."""
    owned_ms = {
        a: {rule_id: to_ms(at) for rule_id, at in by_rule.items()}
        for a, by_rule in owned_from.items()
    }
    produced: dict[int, dict[tuple[str, int, int], Finding]] = {a: {} for a in owned_from}
    for f in findings:
        start = owned_ms.get(f.allocation_id, {}).get(f.rule_id)
        if start is not None and f.start_ms >= start:
            produced[f.allocation_id][f.key[1:]] = f
    # Only the violations of the rules re-derived, each from where its history is owned.
    keys = repository.violation_keys_since(
        session, {a: min(by_rule.values()) for a, by_rule in owned_from.items()}
    )
    chosen = []
    for violation_id, allocation_id, rule_id, begins in keys:
        rules = owned_ms[allocation_id]
        limit = rules.get(rule_id, rules.get(_ANY_RULE))
        if limit is not None and to_ms(begins) >= limit:
            chosen.append(violation_id)
    stored: dict[int, list[repository.StoredViolation]] = {a: [] for a in owned_from}
    for violation in repository.violations_by_id(session, chosen):
        stored[violation.allocation_id].append(violation)
    changes = Changes()
    fresh: list[dict[str, Any]] = []
    rewritten: dict[int, dict[str, Any]] = {}
    unchanged: list[int] = []  # found again as they were: only evaluated_at moves
    withdrawn: list[int] = []
    for allocation_id in sorted(owned_ms):
        context = contexts[allocation_id]
        mine = produced[allocation_id]
        existing = {(v.rule_id, v.condition_key, to_ms(v.start)): v for v in stored[allocation_id]}
        for key, finding in sorted(mine.items()):
            shown = _shown(finding, params)
            row = existing.get(key)
            if row is None:
                fresh.append(_new_row(context, finding, shown, now))
                continue
            diff = {name: value for name, value in shown.items() if getattr(row, name) != value}
            if row.withdrawn_at is not None:
                diff["withdrawn_at"] = None
                changes.opened.append(row.id)
            elif diff:
                changes.updated.append(row.id)
            if diff:
                rewritten[row.id] = {**diff, "evaluated_at": now}
            else:
                unchanged.append(row.id)
        for key, row in existing.items():
            if key not in mine and row.withdrawn_at is None:
                withdrawn.append(row.id)
                changes.closed.append(row.id)
    repository.update_violations(session, rewritten)
    repository.mark_violations(session, unchanged, evaluated_at=now)
    repository.mark_violations(session, withdrawn, withdrawn_at=now, evaluated_at=now)
    changes.opened += repository.insert_violations(session, fresh)
    return changes


def _shown(finding: Finding, params: RuleParams) -> dict[str, Any]:
    """What a stored violation shows of a finding (beyond its natural key)."""
    rule = RULES[finding.rule_id]
    return {
        "end": None if finding.end_ms is None else from_ms(finding.end_ms),
        "rule_version": finding.rule_version,
        "rule_set_version": params.version,
        "severity": rule.severity,
        "status": finding.status,
        "needs_review": rule.needs_review,
        "evidence_fixes": sorted(i for i in finding.evidence if i > 0),
        "evidence_events": sorted(-i for i in finding.evidence if i < 0),
    }


def _new_row(
    context: AllocationContext, finding: Finding, shown: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    return {
        "allocation_id": context.allocation_id,
        "order_id": context.order_id,
        "person_id": context.person_id,
        "condition_key": finding.condition_id or 0,
        "rule_id": finding.rule_id,
        "start": from_ms(finding.start_ms),
        **shown,
        "withdrawn_at": None,
        "first_found_at": now,
        "evaluated_at": now,
    }


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
    with_curfew = load_contexts(session, allocation_ids_with_curfew(session, list(active)))
    for allocation_id, context in with_curfew.items():
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
