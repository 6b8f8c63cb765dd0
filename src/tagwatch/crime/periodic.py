"""Clock-driven work for crime mapping: keep the track boxes close behind the fix store.

Queries never depend on it (they read the fixes not yet boxed directly); it keeps that
remainder small."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.background import PeriodicTask
from tagwatch.crime.track_boxes import refresh_track_boxes

# Fixes boxed per tick at most: under a second of work, so a tick never holds SQLite's one
# writer for long; three times the national load (1,000 fixes a second), so it keeps up, and
# a first run over a large store catches up over many ticks.
_PER_TICK = 200_000


def refresh_boxes(session: Session, now: dt.datetime) -> int:
    return refresh_track_boxes(session, chunk=_PER_TICK, max_fixes=_PER_TICK)


TASKS = [PeriodicTask("crime.track_boxes", 60, refresh_boxes)]
