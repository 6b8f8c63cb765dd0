"""Clock-driven work for data requests: files go when access ends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.background import PeriodicTask
from tagwatch.requests.service import expire_due


def expire(session: Session, now: dt.datetime) -> int:
    return expire_due(session, now)


TASKS = [PeriodicTask("requests.expire", 300, expire)]
