"""The curfew timetable as a week of rows for a table: each day's periods and hours."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class DayRow:
    day: str
    periods: list[str]
    hours: float


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def period_hours(start: str, end: str) -> float:
    """A period whose end is not after its start runs past midnight."""
    length = _minutes(end) - _minutes(start)
    return (length if length > 0 else length + 24 * 60) / 60


def _field(period: Mapping[str, Any] | Any, name: str) -> Any:
    return period[name] if isinstance(period, Mapping) else getattr(period, name)


def week_rows(timetable: Iterable[Mapping[str, Any] | Any]) -> list[DayRow]:
    by_day: dict[str, list[tuple[str, str]]] = {day: [] for day in DAYS}
    for period in timetable:
        day = str(_field(period, "day")).lower()
        by_day.setdefault(day, []).append(
            (str(_field(period, "start")), str(_field(period, "end")))
        )
    rows = []
    for day, periods in by_day.items():
        ordered = sorted(periods)
        rows.append(
            DayRow(
                day=day.capitalize(),
                periods=[
                    f"{s} to {e}" + (" (next day)" if _minutes(e) <= _minutes(s) else "")
                    for s, e in ordered
                ],
                hours=round(sum(period_hours(s, e) for s, e in ordered), 2),
            )
        )
    return rows


def week_hours(rows: Iterable[DayRow]) -> float:
    return round(sum(row.hours for row in rows), 2)
