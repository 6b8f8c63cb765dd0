"""Clock-driven alert work: deliveries, escalation and fitting deadlines."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.alerts import service
from tagwatch.background import PeriodicTask
from tagwatch.settings import settings_of


def deliver(session: Session, now: dt.datetime) -> object:
    return service.deliver_due(session, settings=settings_of(session), now=now)


def escalate(session: Session, now: dt.datetime) -> object:
    return service.escalate_due(session, settings=settings_of(session), now=now)


def awaiting_fitting(session: Session, now: dt.datetime) -> object:
    return len(service.raise_fitting_overdue(session, settings=settings_of(session), now=now))


TASKS = [
    # Outside channels are sent within seconds of the alert's transaction committing.
    PeriodicTask("alerts.deliver", 5, deliver),
    PeriodicTask("alerts.escalate", 30, escalate),
    PeriodicTask("alerts.awaiting_fitting", 300, awaiting_fitting),
]
