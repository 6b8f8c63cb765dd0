"""Clock-fired rules: a curfew starting with no evidence of presence, loss of communication.

Records cannot trigger these (their point is that no record came), so every minute the task
re-evaluates the allocations where the clock may have made a difference.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.background import PeriodicTask
from tagwatch.compliance import service


def run_clock_rules(session: Session, now: dt.datetime) -> dict[str, int]:
    event = service.evaluate_clock_rules(session, now)
    return {"opened": len(event.opened), "updated": len(event.updated), "closed": len(event.closed)}


TASKS = [PeriodicTask("compliance.clock_rules", service.CLOCK_INTERVAL_SECONDS, run_clock_rules)]
