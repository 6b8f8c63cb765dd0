"""Alerts follow the violations compliance finds, in the same transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tagwatch.alerts import service
from tagwatch.compliance.events import ViolationsChanged
from tagwatch.db.base import utcnow
from tagwatch.settings import settings_of


def on_violations_changed(session: Session, event: ViolationsChanged) -> None:
    # The whole event is one batch; the raised alerts are not loaded, nobody here reads them.
    service.follow_violations(
        session,
        [*event.opened, *event.updated, *event.closed],
        evaluated_at=event.evaluated_at,
        settings=settings_of(session),
        now=utcnow(),
    )


HANDLERS = {ViolationsChanged: [on_violations_changed]}
