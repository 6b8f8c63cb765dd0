"""The daily export, run by the clock: the previous UTC day, once its late records are in.

Devices out of coverage upload their records late, so a day is exported `EXPORT_DELAY` after
it ends, and again whenever its manifest predates that moment (an early manual export is
redone once). Checking is cheap, so the task looks every quarter of an hour; a server that was
down at the time catches up on its next look.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.analytics.export import default_out_dir, export_day, read_manifest
from tagwatch.background import PeriodicTask
from tagwatch.settings import settings_of

EXPORT_DELAY = dt.timedelta(hours=2)
CHECK_EVERY_SECONDS = 900


def export_previous_day(session: Session, now: dt.datetime) -> str:
    if not settings_of(session).analytics_daily_export:
        return "daily export switched off (TAGWATCH_ANALYTICS_DAILY_EXPORT)"
    day = (now.astimezone(dt.UTC) - EXPORT_DELAY).date() - dt.timedelta(days=1)
    due = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) + EXPORT_DELAY
    out_dir = default_out_dir(settings_of(session))
    manifest = read_manifest(out_dir, day)
    if manifest is not None and _generated_at(manifest) >= due:
        return f"{day}: exported"
    result = export_day(session, day, out_dir, via="periodic", now=now)
    counts = ", ".join(f"{name} {rows}" for name, rows in result.rows.items())
    return f"{day}: {counts}"


def _generated_at(manifest: dict[str, object]) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(manifest["generated_at"]))
    except (KeyError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)


TASKS = [PeriodicTask("analytics.daily_export", CHECK_EVERY_SECONDS, export_previous_day)]
