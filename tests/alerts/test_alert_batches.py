"""Raising and updating alerts a batch at a time writes exactly what one at a time writes.

The same violations are followed twice from the same starting point, once one violation per
call and once all in one call, then changed and followed again the same two ways; the
alerts, their history, their notifications, the in-app messages and the audit entries must
be the same, in the same order, and the audit chain must still verify.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.audit import verify
from tagwatch.access.models import AuditEntry
from tagwatch.alerts import service
from tagwatch.alerts.models import Alert, AlertHistory, AlertNotification, OutboxMessage
from tagwatch.compliance.models import Violation
from tagwatch.db.base import utcnow
from tagwatch.settings import Settings
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

NOW = utcnow().replace(microsecond=0)

RULES = ["curfew.absence.gps", "tamper.strap", "device.loss_of_communication"]
# What the second evaluation says of a violation.
CHANGES = ["same", "ended", "withdrawn", "unconfirmed", "found_again", "severity"]
_fixes = itertools.count(1)

violations = st.lists(
    st.fixed_dictionaries(
        {
            "rule": st.sampled_from(RULES),
            "status": st.sampled_from(["confirmed", "confirmed", "possible"]),
            "withdrawn": st.booleans(),
            "evidence": st.integers(0, 3),  # fixes, received a minute apart
            "officer": st.sampled_from(["b.officer", "c.officer", ""]),
            "change": st.sampled_from(CHANGES),
        }
    ),
    min_size=1,
    max_size=7,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=violations, notifiers=st.sampled_from(["outbox", "webhook,outbox", "webhook"]))
def test_a_batch_writes_what_one_at_a_time_writes(
    db: Session,
    make_case: Callable[..., Any],
    make_violation: Callable[..., Violation],
    make_user: Callable[..., Any],
    specs: list[dict[str, Any]],
    notifiers: str,
) -> None:
    setup = db.begin_nested()
    try:
        make_user("b.officer", "probation_practitioner")  # c.officer has no account
        ids = [_violation(db, make_case, make_violation, spec).id for spec in specs]
        config = Settings(notifiers=notifiers, webhook_url="http://127.0.0.1:9/hook")

        one_by_one = _followed(db, ids, specs, config, batched=False)
        batched = _followed(db, ids, specs, config, batched=True)

        assert batched == one_by_one
    finally:
        setup.rollback()


def test_the_audit_chain_verifies_after_a_batch(
    db: Session,
    make_case: Callable[..., Any],
    make_violation: Callable[..., Violation],
    make_user: Callable[..., Any],
) -> None:
    make_user("b.officer", "probation_practitioner")
    case = make_case(officer="b.officer")
    ids = [make_violation(case, start=NOW - dt.timedelta(hours=n + 1)).id for n in range(25)]
    config = Settings(notifiers="outbox")
    before = len(_audit(db))

    raised = service.sync_violations(db, ids, evaluated_at=NOW, settings=config, now=NOW)

    assert [a.violation_id for a in raised] == ids
    assert all(a.notified_at == NOW for a in raised)
    audited = _audit(db)[before:]
    assert [e[2] for e in audited] == ["alert.raised", "alert.notified"] * 25
    check = verify(db)
    assert check.ok, check.reason


# ---------------------------------------------------------------- the scenario


def _violation(
    db: Session,
    make_case: Callable[..., Any],
    make_violation: Callable[..., Violation],
    spec: dict[str, Any],
) -> Violation:
    case = make_case(officer=spec["officer"])
    start = NOW - dt.timedelta(hours=2)
    fixes = [
        GpsFix(
            dedupe_key=f"batch-test|{next(_fixes)}",
            device_serial="GPS-BATCH",
            allocation_id=case.allocation.id,
            t_ms=to_ms(start + dt.timedelta(minutes=n)),
            received_ms=to_ms(start + dt.timedelta(minutes=n + 1)),
            lat=51.5,
            lon=-0.1,
            accuracy_m=5.0,
            source="gnss",
        )
        for n in range(spec["evidence"])
    ]
    db.add_all(fixes)
    db.flush()
    violation = make_violation(
        case,
        rule_id=spec["rule"],
        status=spec["status"],
        start=start,
        fixes=[f.id for f in fixes],
    )
    violation.withdrawn_at = NOW - dt.timedelta(minutes=5) if spec["withdrawn"] else None
    db.flush()
    return violation


def _reevaluated(db: Session, ids: list[int], specs: list[dict[str, Any]]) -> None:
    for violation_id, spec in zip(ids, specs, strict=True):
        violation = db.get(Violation, violation_id)
        assert violation is not None
        change = spec["change"]
        if change == "ended":
            violation.end = violation.start + dt.timedelta(minutes=40)
        elif change == "withdrawn":
            violation.withdrawn_at = NOW
        elif change == "unconfirmed":
            violation.status = "possible"
        elif change == "found_again":
            violation.withdrawn_at = None
            violation.status = "confirmed"
        elif change == "severity":
            violation.severity = "low" if violation.severity != "low" else "high"
    db.flush()


def _followed(
    db: Session, ids: list[int], specs: list[dict[str, Any]], config: Settings, *, batched: bool
) -> dict[str, Any]:
    """Everything written by following the violations, evaluating again and following them
    again; rolled back afterwards, so the next run starts from the same place."""
    run = db.begin_nested()
    try:
        first, second = NOW, NOW + dt.timedelta(minutes=7)
        for now in (first, second):
            if now == second:
                _reevaluated(db, ids, specs)
            calls = [ids] if batched else [[i] for i in ids]
            for call in calls:
                service.sync_violations(db, call, evaluated_at=now, settings=config, now=now)
        check = verify(db)
        assert check.ok, check.reason
        return _written(db)
    finally:
        run.rollback()
        db.expire_all()


def _written(db: Session) -> dict[str, Any]:
    """What the runs wrote, with ids (which differ between runs) replaced by subject keys
    and ordinals, and times taken from the wall clock left out."""
    alerts = list(db.scalars(select(Alert).order_by(Alert.id)))
    subject = {a.id: a.subject_key for a in alerts}

    def named(text: str | None) -> str | None:
        if text is None:
            return None
        return re.sub(r"alert (\d+)", lambda m: f"alert {subject[int(m[1])]}", text)

    notifications = list(db.scalars(select(AlertNotification).order_by(AlertNotification.id)))
    messages = list(db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    notification_no = {n.id: i for i, n in enumerate(notifications)}
    message_no = {m.id: i for i, m in enumerate(messages)}
    skipped = {"id", "updated_at"}
    return {
        "alerts": [
            {c.key: getattr(a, c.key) for c in Alert.__table__.columns if c.key not in skipped}
            for a in alerts
        ],
        "history": [
            (subject[h.alert_id], h.at, h.actor, h.action, h.detail)
            for h in db.scalars(select(AlertHistory).order_by(AlertHistory.id))
        ],
        "notifications": [
            (
                subject[n.alert_id],
                n.purpose,
                n.channel,
                n.recipient,
                n.email,
                named(n.subject),
                named(n.body),
                n.status,
                n.attempts,
                n.next_attempt_at,
                n.sent_at,
                n.last_error,
                # "outbox-<message id>": which message, by its place
                None
                if n.provider_reference is None
                else message_no[int(n.provider_reference.removeprefix("outbox-"))],
            )
            for n in notifications
        ],
        "outbox": [
            (
                subject[m.alert_id],
                m.recipient,
                named(m.subject),
                named(m.body),
                notification_no[int(m.reference.rsplit("-", 1)[1])],
                m.read_at,
            )
            for m in messages
        ],
        "audit": [
            (*entry[:4], subject[int(entry[4])], *entry[5:])
            for entry in _audit(db)
            if entry[3] == "alert"
        ],
    }


def _audit(db: Session) -> list[tuple[Any, ...]]:
    """Audit entries, in chain order, without their time (taken from the wall clock)."""
    return [
        (e.username, e.role, e.action, e.subject_type, e.subject_id, e.purpose, e.detail)
        for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))
    ]
