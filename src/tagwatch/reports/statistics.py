"""The tables of a statistics publication on electronic monitoring, for a period.

Facts are read once (people, orders and allocations whole; violations and alerts of the
period as integer arrays, see repository.integer_arrays, counted per order with NumPy); every
table is then a pivot of per-order records by one breakdown, so all tables count the same
facts the same way. Definitions are in docs/statistics.md and on the
notes sheet of the spreadsheet.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from tagwatch.cases.validation import DISABILITY, ORDER_TYPES, SEX
from tagwatch.reports import repository
from tagwatch.reports.suppression import SUPPRESSED, Grid, suppress

TOTAL = "Total"
DAY = 86400.0

# A person wearing two devices is counted once, under the first of these they wear.
DEVICE_GROUPS = {
    "gps_tag": "GPS",
    "alcohol_tag": "Alcohol",
    "rf_tag": "Curfew (RF)",
    "home_monitoring_unit": "Curfew (RF)",
    "non_fitted_device": "Non-fitted",
}
DEVICE_PRECEDENCE = ("GPS", "Alcohol", "Curfew (RF)", "Non-fitted")
END_OUTCOMES = {"completed": "Completed", "revoked": "Revoked", "expired": "Expired"}
# Violations are grouped by the part of their rule id before the first dot (others: "Other").
VIOLATION_GROUPS = {
    "curfew": "Curfew",
    "zone": "Zones",
    "tamper": "Tamper",
    "battery": "Battery",
    "device": "Communication or location",
    "home_unit": "Home unit",
    "alcohol": "Alcohol",
    "checkin": "Check-in",
}
AGE_BANDS = (
    (0, "Under 18"),
    (18, "18 to 24"),
    (25, "25 to 34"),
    (35, "35 to 44"),
    (45, "45 to 54"),
    (55, "55 to 64"),
    (65, "65 and over"),
)
# ONS 2021 top-level ethnic groups, from the first letter of the code.
ETHNIC_GROUPS = {
    "A": "Asian or Asian British",
    "B": "Black, Black British, Caribbean or African",
    "M": "Mixed or multiple ethnic groups",
    "W": "White",
    "O": "Other ethnic group",
}
ETHNICITY_NOT_STATED = "Not recorded or not stated"
NATIONALITY_GROUPS = ("British", "Other", "Not recorded")


def _code_label(code: str) -> str:
    return code.replace("_", " ").capitalize()


def age_band(date_of_birth: dt.date, on: dt.date) -> str:
    age = (
        on.year
        - date_of_birth.year
        - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))
    )
    return [label for lower, label in AGE_BANDS if age >= lower][-1]


def ethnic_group(code: str) -> str:
    return (
        ETHNIC_GROUPS.get(code[:1], ETHNICITY_NOT_STATED)
        if code not in ("NR", "NS")
        else ETHNICITY_NOT_STATED
    )


def nationality_group(code: str) -> str:
    if code == "not_recorded":
        return "Not recorded"
    return "British" if code == "GBR" else "Other"


@dataclass(frozen=True)
class Breakdown:
    key: str
    heading: str
    category: Callable[[Any, Any, dt.date], str]
    fixed: tuple[str, ...] = ()


def breakdowns(region_labels: dict[str, str], unit_labels: dict[str, str]) -> list[Breakdown]:
    return [
        Breakdown("all", "All", lambda o, p, on: "All people"),
        Breakdown(
            "order_type",
            "Order type",
            lambda o, p, on: _code_label(o.type),
            tuple(_code_label(t) for t in ORDER_TYPES),
        ),
        Breakdown(
            "region", "Region", lambda o, p, on: region_labels.get(o.region_code, o.region_code)
        ),
        Breakdown(
            "delivery_unit",
            "Probation delivery unit",
            lambda o, p, on: unit_labels.get(o.delivery_unit_code, o.delivery_unit_code),
        ),
        Breakdown(
            "age_band",
            "Age band",
            lambda o, p, on: age_band(p.date_of_birth, on),
            tuple(label for _, label in AGE_BANDS),
        ),
        Breakdown(
            "sex", "Sex", lambda o, p, on: _code_label(p.sex), tuple(_code_label(s) for s in SEX)
        ),
        Breakdown(
            "ethnic_group",
            "Ethnic group",
            lambda o, p, on: ethnic_group(p.ethnicity),
            (*ETHNIC_GROUPS.values(), ETHNICITY_NOT_STATED),
        ),
        Breakdown(
            "disability",
            "Disability",
            lambda o, p, on: _code_label(p.disability),
            tuple(_code_label(d) for d in DISABILITY),
        ),
        Breakdown(
            "nationality",
            "Nationality group",
            lambda o, p, on: nationality_group(p.nationality),
            NATIONALITY_GROUPS,
        ),
    ]


@dataclass(frozen=True)
class Rate:
    label: str
    numerator: str
    denominator: str
    scale: float
    digits: int


@dataclass(frozen=True)
class Measure:
    """One kind of table: additive parts (with a Total column when `part_total`), extra counts
    that do not add across, and rates derived from either."""

    key: str
    title: str
    parts: tuple[str, ...]
    part_total: bool
    extras: tuple[str, ...] = ()
    rates: tuple[Rate, ...] = ()
    notes: tuple[int, ...] = ()

    @property
    def count_columns(self) -> tuple[str, ...]:
        return (*self.parts, *((TOTAL,) if self.part_total else ()), *self.extras)


@dataclass
class Table:
    key: str
    title: str
    row_heading: str
    rows: list[str]  # the last is the Total row
    measure: Measure
    values: dict[str, list[float]]  # count column -> one value a row
    notes: tuple[int, ...] = ()
    hidden: set[tuple[int, str]] = field(default_factory=set)

    @property
    def columns(self) -> list[str]:
        return [*self.measure.count_columns, *(r.label for r in self.measure.rates)]

    def apply_suppression(self, threshold: int) -> None:
        measure = self.measure
        parts = [*measure.parts, *((TOTAL,) if measure.part_total else ())]
        groups = [parts] if parts else []
        groups += [[extra] for extra in measure.extras]
        for columns in groups:
            grid = Grid(
                [[self.values[c][r] for c in columns] for r in range(len(self.rows))],
                column_total=measure.part_total and columns is parts,
            )
            self.hidden |= {(r, columns[c]) for r, c in suppress(grid, threshold)}

    def cell(self, row: int, column: str) -> float | str | None:
        """The published value: a number, `[c]`, or None for a rate with no denominator."""
        rate = next((r for r in self.measure.rates if r.label == column), None)
        if rate is None:
            if (row, column) in self.hidden:
                return SUPPRESSED
            value = self.values[column][row]
            return int(value) if float(value).is_integer() else round(value, 1)
        if {(row, rate.numerator), (row, rate.denominator)} & self.hidden:
            return SUPPRESSED
        denominator = self.values[rate.denominator][row]
        if not denominator:
            return None
        return round(self.values[rate.numerator][row] / denominator * rate.scale, rate.digits)

    def grid(self) -> list[list[float | str | None]]:
        return [[self.cell(r, c) for c in self.columns] for r in range(len(self.rows))]


def measures() -> list[Measure]:
    violation_parts = tuple(dict.fromkeys(VIOLATION_GROUPS.values()))
    return [
        Measure(
            "monitored",
            "People monitored at the end of the period, by device type",
            DEVICE_PRECEDENCE,
            True,
            notes=(1, 2),
        ),
        Measure(
            "starts",
            "New orders and new fittings in the period",
            (),
            False,
            extras=("New orders", "New fittings"),
            notes=(3,),
        ),
        Measure(
            "ended",
            "Orders ended in the period, by outcome, with the compliance rate",
            tuple(END_OUTCOMES.values()),
            True,
            rates=(Rate("Compliance rate (%)", "Completed", TOTAL, 100, 1),),
            notes=(4,),
        ),
        Measure(
            "violations",
            "Violations per 100 monitored days, by type",
            (*violation_parts, "Other"),
            True,
            extras=("Monitored days",),
            rates=tuple(
                Rate(f"{p} per 100 days", p, "Monitored days", 100, 2)
                for p in (*violation_parts, "Other", TOTAL)
            ),
            notes=(5, 6),
        ),
        Measure(
            "alerts",
            "Alerts per person per monitored day",
            (),
            False,
            extras=("Alerts", "Monitored days"),
            rates=(Rate("Alerts per person per day", "Alerts", "Monitored days", 1, 3),),
            notes=(5, 7),
        ),
    ]


NOTES = {
    1: "A person is counted once, under the first device type they wear in the order GPS, "
    "alcohol, curfew (RF), non-fitted, and under the order that device is allocated to.",
    2: "Monitored at the end of the period: a device fitted before the end of the last day "
    "and not removed by then.",
    3: "New orders are orders whose start date falls in the period; new fittings are devices "
    "fitted in the period (a person may have more than one).",
    4: "Orders ended in the period by their end date. The compliance rate is orders completed "
    "as a share of all orders ended.",
    5: "Monitored days: for each order, the days in the period on which at least one device "
    "was fitted to it. A person on two orders at once counts on both.",
    6: "Violations that began in the period and that re-evaluation has not withdrawn, "
    "attributed to the order they were found on.",
    7: "Alerts raised in the period about an order (violations and missed fitting deadlines).",
    8: "Breakdowns by age use the age on the last day of the period; other personal details "
    "are as recorded when the statistics were produced. Ethnic groups are the ONS 2021 "
    "top-level groups.",
    9: "Cells with a count from 1 to one less than the threshold are shown as [c], with other "
    "cells hidden where a hidden value could be worked out from a total.",
}


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"to: {self.end} is before from ({self.start})")

    @property
    def opens(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), dt.UTC)

    @property
    def closes(self) -> dt.datetime:
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), dt.UTC)

    @property
    def label(self) -> str:
        return f"{self.start:%-d %B %Y} to {self.end:%-d %B %Y}"


@dataclass(frozen=True)
class Records:
    """Per-order records of each measure: (order id, column, value)."""

    by_measure: dict[str, list[tuple[int, str, float]]]


def _union_days(intervals: Iterable[tuple[dt.datetime, dt.datetime]]) -> float:
    total, reach = 0.0, None
    for begin, end in sorted(intervals):
        if reach is not None and begin < reach:
            begin = reach
        if end > begin:
            total += (end - begin).total_seconds()
            reach = end
    return total / DAY


def collect(
    session: Session, period: Period, alerts: repository.RaisedAlerts
) -> tuple[Records, dict[int, Any], dict[int, Any]]:
    """Per-order records of every measure, and the orders and people they are about;
    `alerts` are those raised in the period (repository.alerts_raised)."""
    opens, closes = period.opens, period.closes
    orders = repository.orders(session)
    people = repository.people(session)
    allocations = repository.allocations(session, closes)
    records: dict[str, list[tuple[int, str, float]]] = defaultdict(list)

    # People monitored at the end: one device group and one order each.
    wearing: dict[int, tuple[int, int]] = {}
    order_windows: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for a in allocations:
        removed = a.removed_at or closes
        if removed >= closes:
            rank = DEVICE_PRECEDENCE.index(DEVICE_GROUPS.get(a.device_type, "Non-fitted"))
            best = wearing.get(a.person_id)
            if best is None or (rank, a.order_id) < best:
                wearing[a.person_id] = (rank, a.order_id)
        if opens <= a.fitted_at < closes:
            records["starts"].append((a.order_id, "New fittings", 1))
        window = (max(a.fitted_at, opens), min(removed, closes))
        if window[1] > window[0]:
            order_windows[a.order_id].append(window)
    for rank, order_id in wearing.values():
        records["monitored"].append((order_id, DEVICE_PRECEDENCE[rank], 1))
    for order_id, windows in order_windows.items():
        days = _union_days(windows)
        records["violations"].append((order_id, "Monitored days", days))
        records["alerts"].append((order_id, "Monitored days", days))

    for o in orders.values():
        if period.start <= o.start_date <= period.end:
            records["starts"].append((o.id, "New orders", 1))
        if (
            o.status == "ended"
            and o.end_reason in END_OUTCOMES
            and period.start <= o.end_date <= period.end
        ):
            records["ended"].append((o.id, END_OUTCOMES[o.end_reason], 1))
    prefixes = list(VIOLATION_GROUPS)
    groups = [*VIOLATION_GROUPS.values(), "Other"]
    for violated, group, count in repository.violation_counts(session, opens, closes, prefixes):
        if violated in orders:
            records["violations"].append((violated, groups[group], count))
    alerted, counts = np.unique(alerts.order_ids, return_counts=True)
    for order_id, count in zip(alerted.tolist(), counts.tolist(), strict=True):
        if order_id in orders:
            records["alerts"].append((order_id, "Alerts", count))
    # One record per order and column keeps the pivots short.
    merged: dict[str, list[tuple[int, str, float]]] = {}
    for key, items in records.items():
        sums: dict[tuple[int, str], float] = defaultdict(float)
        for order_id, column, value in items:
            sums[(order_id, column)] += value
        merged[key] = [(order_id, column, value) for (order_id, column), value in sums.items()]
    return Records(merged), orders, people


def categories(
    breakdown: Breakdown, orders: dict[int, Any], people: dict[int, Any], on: dt.date
) -> dict[int, str]:
    """Each order's category in a breakdown, worked out once for every table."""
    return {oid: breakdown.category(o, people[o.person_id], on) for oid, o in orders.items()}


def pivot(
    measure: Measure,
    breakdown: Breakdown,
    records: list[tuple[int, str, float]],
    categories_of: dict[int, str],
) -> tuple[list[str], dict[str, list[float]]]:
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for order_id, column, value in records:
        sums[categories_of[order_id]][column] += value
    categories = list(breakdown.fixed) + sorted(set(sums) - set(breakdown.fixed))
    if breakdown.key == "all":
        categories = []
    rows = [*categories, TOTAL]
    values: dict[str, list[float]] = {}
    for column in (*measure.parts, *measure.extras):
        inner = [sums[c][column] if c in sums else 0.0 for c in categories]
        values[column] = [*inner, sum(s[column] for s in sums.values())]
    if measure.part_total:
        values[TOTAL] = [sum(values[p][r] for p in measure.parts) for r in range(len(rows))]
    return rows, values


@dataclass
class Publication:
    period: Period
    threshold: int | None
    tables: list[Table]
    performance: dict[str, Any]
    notes: dict[int, str]
    produced_at: dt.datetime


def compute(
    session: Session,
    period: Period,
    *,
    threshold: int | None = None,
    now: dt.datetime | None = None,
) -> Publication:
    """Every table for the period; `threshold` set means suppressed for publication."""
    from tagwatch.reports.performance import service_performance

    alerts = repository.alerts_raised(session, period.opens, period.closes)
    records, orders, people = collect(session, period, alerts)
    all_breakdowns = breakdowns(
        repository.labels(session, "region"), repository.labels(session, "delivery_unit")
    )
    tables: list[Table] = []
    category_maps = [categories(b, orders, people, period.end) for b in all_breakdowns]
    for number, measure in enumerate(measures(), start=1):
        for letter, breakdown, categories_of in zip(
            "abcdefghijklmnopqrstuvwxyz", all_breakdowns, category_maps, strict=False
        ):
            rows, values = pivot(
                measure, breakdown, records.by_measure.get(measure.key, []), categories_of
            )
            by = "" if breakdown.key == "all" else f", by {breakdown.heading.lower()}"
            table = Table(
                key=f"{number}{letter}",
                title=f"Table {number}{letter}: {measure.title}{by}, {period.label}",
                row_heading=breakdown.heading,
                rows=rows,
                measure=measure,
                values=values,
                notes=(
                    *measure.notes,
                    *(
                        (8,)
                        if breakdown.key not in ("all", "order_type", "region", "delivery_unit")
                        else ()
                    ),
                    *((9,) if threshold else ()),
                ),
            )
            if threshold:
                table.apply_suppression(threshold)
            tables.append(table)
    performance = service_performance(session, period, alerts)
    return Publication(
        period, threshold, tables, performance, NOTES, now or dt.datetime.now(dt.UTC)
    )
