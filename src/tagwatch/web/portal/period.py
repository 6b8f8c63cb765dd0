"""A period chosen on a form in UK time (`datetime-local` fields), checked and made UTC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tagwatch.london import LONDON

FIELD_FORMAT = "%Y-%m-%dT%H:%M"
LONGEST = dt.timedelta(days=31)


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    @property
    def start_field(self) -> str:
        return self.start.astimezone(LONDON).strftime(FIELD_FORMAT)

    @property
    def end_field(self) -> str:
        return self.end.astimezone(LONDON).strftime(FIELD_FORMAT)


def _parse(value: str, label: str) -> dt.datetime:
    try:
        local = dt.datetime.strptime(value.strip()[:16], FIELD_FORMAT)  # noqa: DTZ007
    except ValueError as error:
        raise ValueError(f"{label} must be a date and time, like 2026-11-23T19:00") from error
    return local.replace(tzinfo=LONDON).astimezone(dt.UTC)


def parse_period(
    start: str | None, end: str | None, now: dt.datetime, default: dt.timedelta
) -> tuple[Period, dict[str, str]]:
    """The period asked for (or the `default` length ending now) and any field errors."""
    errors: dict[str, str] = {}
    fallback = Period(now - default, now)
    try:
        begin = _parse(start, "From") if start else fallback.start
    except ValueError as error:
        errors["from"] = str(error)
        begin = fallback.start
    try:
        finish = _parse(end, "To") if end else (begin + default if start else fallback.end)
    except ValueError as error:
        errors["to"] = str(error)
        finish = begin + default
    if not errors:
        if finish <= begin:
            errors["to"] = "To must be after From"
        elif finish - begin > LONGEST:
            errors["to"] = "The period must be 31 days or shorter"
    return Period(begin, finish), errors
