"""Times are stored in UTC and shown in Europe/London."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def london_time(value: dt.datetime | None, fmt: str = "%-d %b %Y %H:%M") -> str:
    """A stored time as people in England and Wales read it; blank for none."""
    if value is None:
        return ""
    return value.astimezone(LONDON).strftime(fmt)
