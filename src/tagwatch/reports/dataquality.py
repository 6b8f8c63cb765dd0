"""The data quality framework: rules by dimension, scores by delivery unit, daily snapshots.

Each rule looks at one kind of record and says, for every record it checks, whether it
passes. A record's delivery unit is that of the person's latest order, so the team that
manages the person is the team that fixes the record.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tagwatch.cases.models import (
    Address,
    Allocation,
    Condition,
    Device,
    Order,
    Person,
    SafeguardingCheck,
)
from tagwatch.cases.postcodes import normalise_postcode
from tagwatch.cases.validation import CHECK_KINDS
from tagwatch.reports.models import DqSnapshot
from tagwatch.telemetry.models import DeviceTrack

NO_UNIT = "none"
LIVE_STATUSES = ("active", "suspended")
# Telemetry must have been heard within this of now: a minute's fixes plus buffering slack.
TELEMETRY_INTERVAL = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Finding:
    """One record checked by one rule."""

    person_id: int | None
    record: str  # what was checked, e.g. "order ORD0000001"
    passed: bool


@dataclass(frozen=True)
class Rule:
    rule_id: str
    dimension: str  # completeness, validity, consistency, timeliness
    description: str
    threshold: float  # the share of records that must pass, 0 to 1
    check: Callable[[Session, dt.datetime], Iterator[Finding]]


def _people(session: Session, column: str, missing: tuple[str, ...]) -> Iterator[Finding]:
    for person_id, ref, value in session.execute(
        select(Person.id, Person.ref, getattr(Person, column))
    ):
        yield Finding(person_id, f"person {ref}", value not in missing)


def _postcodes(session: Session, now: dt.datetime) -> Iterator[Finding]:
    for person_id, ref, postcode in session.execute(
        select(Address.person_id, Address.ref, Address.postcode)
    ):
        try:
            normalise_postcode(postcode)
            valid = True
        except ValueError:
            valid = False
        yield Finding(person_id, f"address {ref} ({postcode})", valid)


def _order_dates(session: Session, now: dt.datetime) -> Iterator[Finding]:
    for person_id, ref, start, end in session.execute(
        select(Order.person_id, Order.ref, Order.start_date, Order.end_date)
    ):
        yield Finding(person_id, f"order {ref}", end >= start)


def _allocations_on_live_orders(session: Session, now: dt.datetime) -> Iterator[Finding]:
    rows = session.execute(
        select(Allocation.person_id, Device.serial, Order.ref, Order.status)
        .join(Order, Order.id == Allocation.order_id)
        .join(Device, Device.id == Allocation.device_id)
        .where(Allocation.removed_at.is_(None))
    )
    for person_id, serial, ref, status in rows:
        yield Finding(person_id, f"device {serial} on order {ref}", status in LIVE_STATUSES)


def _telemetry_heard(session: Session, now: dt.datetime) -> Iterator[Finding]:
    since_ms = int((now - TELEMETRY_INTERVAL).timestamp() * 1000)
    rows = session.execute(
        select(Allocation.person_id, Device.serial, DeviceTrack.max_t_ms)
        .join(Order, Order.id == Allocation.order_id)
        .join(Device, Device.id == Allocation.device_id)
        .outerjoin(DeviceTrack, DeviceTrack.device_serial == Device.serial)
        .where(Allocation.removed_at.is_(None), Order.status == "active")
    )
    for person_id, serial, last_ms in rows:
        yield Finding(person_id, f"device {serial}", last_ms is not None and last_ms >= since_ms)


def _curfew_checks(session: Session, now: dt.datetime) -> Iterator[Finding]:
    checked: dict[int, set[str]] = defaultdict(set)
    for address_id, kind in session.execute(
        select(SafeguardingCheck.address_id, SafeguardingCheck.kind)
    ):
        checked[address_id].add(kind)
    rows = session.execute(
        select(Order.person_id, Order.ref, Condition.address_id)
        .join(Condition, Condition.order_id == Order.id)
        .where(Condition.type == "curfew", Order.status.in_(LIVE_STATUSES))
    )
    for person_id, ref, curfew_address in rows:
        at: int | None = curfew_address
        complete = at is not None and set(CHECK_KINDS) <= checked[at]
        yield Finding(person_id, f"curfew on order {ref}", complete)


def _fitting_deadlines(session: Session, now: dt.datetime) -> Iterator[Finding]:
    rows = session.execute(
        select(Order.person_id, Order.ref, Order.fitting_deadline).where(
            Order.status == "awaiting_fitting"
        )
    )
    for person_id, ref, deadline in rows:
        yield Finding(
            person_id, f"order {ref} awaiting fitting", deadline is None or deadline >= now
        )


RULES: tuple[Rule, ...] = (
    Rule(
        "DQ-C01",
        "completeness",
        "Ethnicity is recorded (prefers not to say is an answer)",
        0.95,
        lambda s, now: _people(s, "ethnicity", ("NR",)),
    ),
    Rule(
        "DQ-C02",
        "completeness",
        "Disability is recorded",
        0.95,
        lambda s, now: _people(s, "disability", ("not_recorded",)),
    ),
    Rule(
        "DQ-C03",
        "completeness",
        "Nationality is recorded",
        0.98,
        lambda s, now: _people(s, "nationality", ("not_recorded",)),
    ),
    Rule("DQ-V01", "validity", "Address postcode is a valid UK postcode", 0.99, _postcodes),
    Rule("DQ-K01", "consistency", "Order ends on or after its start", 1.0, _order_dates),
    Rule(
        "DQ-K02",
        "consistency",
        "A fitted device is allocated to an active or suspended order",
        1.0,
        _allocations_on_live_orders,
    ),
    Rule(
        "DQ-K03",
        "consistency",
        "An active curfew's address has domestic abuse and child safeguarding checks",
        1.0,
        _curfew_checks,
    ),
    Rule(
        "DQ-T01",
        "timeliness",
        "Each fitted device on an active order was heard within the last hour",
        0.98,
        _telemetry_heard,
    ),
    Rule(
        "DQ-T02",
        "timeliness",
        "Orders awaiting fitting are within their fitting deadline",
        1.0,
        _fitting_deadlines,
    ),
)
RULES_BY_ID = {rule.rule_id: rule for rule in RULES}


@dataclass(frozen=True)
class Score:
    rule_id: str
    delivery_unit_code: str
    checked: int
    failed: int

    @property
    def score(self) -> float | None:
        return None if not self.checked else (self.checked - self.failed) / self.checked

    @property
    def meets_threshold(self) -> bool:
        return self.score is None or self.score >= RULES_BY_ID[self.rule_id].threshold


@dataclass(frozen=True)
class Failure:
    rule_id: str
    delivery_unit_code: str
    person_id: int | None
    record: str

    @property
    def kind(self) -> str:
        """The kind of record alone (person, order, ...), which identifies nobody."""
        return self.record.split(" ", 1)[0]


def person_units(session: Session) -> dict[int, str]:
    """Each person's delivery unit: that of their latest order."""
    units: dict[int, str] = {}
    for person_id, unit in session.execute(
        select(Order.person_id, Order.delivery_unit_code).order_by(Order.person_id, Order.id)
    ):
        units[person_id] = unit
    return units


def evaluate(session: Session, now: dt.datetime) -> tuple[list[Score], list[Failure]]:
    units = person_units(session)
    scores: list[Score] = []
    failures: list[Failure] = []
    for rule in RULES:
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for finding in rule.check(session, now):
            unit = (
                units.get(finding.person_id, NO_UNIT) if finding.person_id is not None else NO_UNIT
            )
            tally[unit][0] += 1
            if not finding.passed:
                tally[unit][1] += 1
                failures.append(Failure(rule.rule_id, unit, finding.person_id, finding.record))
        scores += [
            Score(rule.rule_id, unit, checked, failed)
            for unit, (checked, failed) in sorted(tally.items())
        ]
    return scores, failures


def overall(scores: list[Score]) -> list[Score]:
    """Each rule's score across every delivery unit."""
    merged: dict[str, list[int]] = {rule.rule_id: [0, 0] for rule in RULES}
    for s in scores:
        merged[s.rule_id][0] += s.checked
        merged[s.rule_id][1] += s.failed
    return [Score(rule_id, "all", c, f) for rule_id, (c, f) in merged.items()]


def take_snapshot(session: Session, now: dt.datetime) -> int:
    """Store today's scores (again, if taken earlier today). Returns the rows written."""
    scores, _ = evaluate(session, now)
    day = now.date()
    session.execute(delete(DqSnapshot).where(DqSnapshot.day == day))
    session.add_all(
        DqSnapshot(
            day=day,
            rule_id=s.rule_id,
            delivery_unit_code=s.delivery_unit_code,
            checked=s.checked,
            failed=s.failed,
            taken_at=now,
        )
        for s in scores
    )
    session.flush()
    return len(scores)


def trend(
    session: Session, delivery_unit_code: str | None, days: int, today: dt.date
) -> dict[dt.date, dict[str, float | None]]:
    """Score a day for each rule over the last `days`, for one unit or all of them."""
    query = select(DqSnapshot).where(DqSnapshot.day > today - dt.timedelta(days=days))
    if delivery_unit_code:
        query = query.where(DqSnapshot.delivery_unit_code == delivery_unit_code)
    sums: dict[dt.date, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for snap in session.scalars(query):
        sums[snap.day][snap.rule_id][0] += snap.checked
        sums[snap.day][snap.rule_id][1] += snap.failed
    return {
        day: {rule: (None if c == 0 else (c - f) / c) for rule, (c, f) in by_rule.items()}
        for day, by_rule in sorted(sums.items())
    }
