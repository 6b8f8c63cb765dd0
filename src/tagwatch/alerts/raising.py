"""Raising alerts, and keeping them in line with their violations, a batch at a time.

However many violations an evaluation changed, the batch is read in a handful of queries (the
violations, their alerts, orders, evidence and officers) and written in a handful of
statements (new alerts, changed alerts, notifications, in-app messages, history rows, audit
entries), all in the caller's transaction. What is written is what handling the violations
one at a time, in id order, would write, in the same order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.orm import Session

from tagwatch.alerts import notices, repository
from tagwatch.alerts.journal import Journal
from tagwatch.alerts.models import DELAY_STEPS, Alert, AlertStatus, microseconds_between
from tagwatch.alerts.sources import (
    AlertSource,
    ViolationFacts,
    alerts_on,
    from_violations,
    violation_subject,
)
from tagwatch.settings import Settings

log = structlog.get_logger()


def sync_violations(
    session: Session,
    violation_ids: Iterable[int],
    *,
    evaluated_at: dt.datetime,
    settings: Settings,
    now: dt.datetime,
) -> list[Alert]:
    """Bring the alerts of these violations in line with them; returns the alerts raised.

    Safe to run any number of times for the same violations: the subject key allows one
    alert per violation, and an unchanged violation changes nothing.
    """
    raised = follow_violations(
        session, violation_ids, evaluated_at=evaluated_at, settings=settings, now=now
    )
    return repository.alerts_by_id(session, raised)


def follow_violations(
    session: Session,
    violation_ids: Iterable[int],
    *,
    evaluated_at: dt.datetime,
    settings: Settings,
    now: dt.datetime,
) -> list[int]:
    """`sync_violations`, returning only the ids of the alerts raised (nothing is loaded)."""
    violations = repository.violation_facts(session, violation_ids)
    alerts = repository.alert_states(session, [violation_subject(v.id) for v in violations])
    unalerted = [v for v in violations if alerts_on(v) and violation_subject(v.id) not in alerts]
    sources = {s.violation_id: s for s in from_violations(session, unalerted, evaluated_at)}
    journal = Journal()
    raising = Raising(settings, now, journal)
    changes: list[dict[str, Any]] = []
    for violation in violations:
        alert = alerts.get(violation_subject(violation.id))
        if alert is None:
            if violation.id in sources:
                raising.add(sources[violation.id])
        elif (change := _follow(alert, violation, now, journal)) is not None:
            changes.append(change)
    raised = raising.write(session)
    repository.update_alerts(session, changes)
    journal.write(session)
    return raised


def raise_alerts(
    session: Session, sources: Sequence[AlertSource], *, settings: Settings, now: dt.datetime
) -> list[Alert]:
    """The alert of each source: raised and notified if it is new; never a second one."""
    stored = repository.alert_states(session, [source.subject_key for source in sources])
    journal = Journal()
    raising = Raising(settings, now, journal)
    for source in sources:
        if source.subject_key not in stored:
            raising.add(source)
    raising.write(session)
    journal.write(session)
    ids = {key: alert.id for key, alert in stored.items()} | raising.ids()
    return repository.alerts_by_id(session, [ids[source.subject_key] for source in sources])


@dataclass
class _NewAlert:
    """An alert planned in a batch; `id` is set when the batch is inserted."""

    row: dict[str, Any]
    id: int | None = None


@dataclass
class Raising:
    """New alerts of one batch: `add` plans each (its journal entries take their place in
    order), `write` inserts them all and sends their notifications."""

    settings: Settings
    now: dt.datetime
    journal: Journal
    _planned: dict[str, _NewAlert] = field(default_factory=dict)

    @cached_property
    def _at_once(self) -> bool:
        # Read when the first alert is planned: a batch that raises none needs no channels.
        return notices.delivers_at_once(self.settings)

    def add(self, source: AlertSource) -> None:
        if source.subject_key in self._planned:
            return
        officer = source.responsible_officer
        notified = self.now if officer and self._at_once else None
        new = _NewAlert(_alert_row(source, self.settings, self.now, notified))
        self._planned[source.subject_key] = new
        self.journal.add(new, "raised", self.now, {"subject": source.subject_key})
        if notified is not None:
            where: dict[str, object] = {"channel": notices.OUTBOX, "recipient": officer}
            self.journal.add(new, "notified", self.now, where)

    def write(self, session: Session) -> list[int]:
        """Insert the planned alerts and notify their officers; returns their ids."""
        planned = list(self._planned.values())
        ids = repository.insert_alerts(session, [new.row for new in planned])
        officers = {new.row["responsible_officer"] for new in planned} - {None}
        emails = repository.emails_of(session, officers)
        sent: list[notices.Notice] = []
        for new in planned:
            new.id = ids[new.row["subject_key"]]
            officer = new.row["responsible_officer"]
            if not officer:
                log.warning("alert has no responsible officer", alert_id=new.id)
                continue
            recipient = notices.Person(officer, emails.get(officer))
            sent.append(notices.Notice({**new.row, "id": new.id}, new.id, "raised", [recipient]))
        notices.send(session, sent, self.settings, self.now)
        return [new.id for new in planned if new.id is not None]

    def ids(self) -> dict[str, int]:
        return {key: new.id for key, new in self._planned.items() if new.id is not None}


def _alert_row(
    source: AlertSource, settings: Settings, now: dt.datetime, notified_at: dt.datetime | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": source.kind,
        "subject_key": source.subject_key,
        "violation_id": source.violation_id,
        "order_id": source.order_id,
        "allocation_id": source.allocation_id,
        "person_id": source.person_id,
        "violation_type": source.violation_type,
        "severity": source.severity,
        "summary": source.summary[:500],
        "needs_tamper_review": source.needs_tamper_review,
        "status": AlertStatus.OPEN,
        "responsible_officer": source.responsible_officer,
        "delivery_unit_code": source.delivery_unit_code,
        "event_at": source.event_at,
        "received_at": source.received_at,
        "evaluated_at": source.evaluated_at,
        "raised_at": now,
        "notified_at": notified_at,
        "outcome_due_at": now + dt.timedelta(hours=settings.outcome_deadline_hours),
        "violation_ended_at": source.ended_at,
        "escalated_to": [],
    }
    # What the flush hook (`models._fill_delays`) fills for an alert written through the ORM.
    for delay, step in DELAY_STEPS.items():
        row[delay] = microseconds_between(source.event_at, row.get(step))
    return row


def _follow(
    alert: Row[Any], violation: ViolationFacts, now: dt.datetime, journal: Journal
) -> dict[str, Any] | None:
    """A re-evaluated violation changes its alert's facts, not the alert's existence: the
    alert's `repository.FOLLOWED` columns if anything changed, else None."""
    state = {name: getattr(alert, name) for name in repository.FOLLOWED}
    if not alerts_on(violation):
        if alert.violation_withdrawn_at is not None:
            return None
        # A resolved alert keeps its outcome; its history shows the withdrawal.
        why = "withdrawn" if violation.withdrawn_at is not None else "no longer confirmed"
        state["violation_withdrawn_at"] = now
        if alert.status != AlertStatus.RESOLVED:
            state["status"] = AlertStatus.WITHDRAWN
        reason = f"re-evaluation: the violation is {why}"
        journal.add(alert, "withdrawn", now, {"reason": reason})
        return {"alert_id": alert.id, **state}
    changed = False
    if alert.violation_withdrawn_at is not None:
        state["violation_withdrawn_at"] = None
        if alert.status == AlertStatus.WITHDRAWN:
            state["status"] = (
                AlertStatus.ACKNOWLEDGED if alert.acknowledged_at else AlertStatus.OPEN
            )
        journal.add(alert, "reinstated", now, {"status": state["status"]})
        changed = True
    facts: dict[str, object] = {}
    if violation.severity != alert.severity:
        facts["severity"] = state["severity"] = violation.severity
    if violation.end != alert.violation_ended_at:
        facts["ended_at"] = state["violation_ended_at"] = violation.end
    if facts:
        action = "violation_ended" if violation.end is not None else "violation_updated"
        journal.add(alert, action, now, facts)
        changed = True
    return {"alert_id": alert.id, **state} if changed else None
