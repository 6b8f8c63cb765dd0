"""Statistics on a simulated cohort agree with a plain recount of the imported document."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert
from tagwatch.cases.models import Order
from tagwatch.cases.orderfile import import_document
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.compliance.models import Violation
from tagwatch.reports.statistics import TOTAL, Period, compute
from tagwatch.simulate.cohort import generate_cohort

PERIOD = Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
GROUP = {
    "gps_tag": "GPS",
    "alcohol_tag": "Alcohol",
    "rf_tag": "Curfew (RF)",
    "home_monitoring_unit": "Curfew (RF)",
    "non_fitted_device": "Non-fitted",
}
RANK = ["GPS", "Alcohol", "Curfew (RF)", "Non-fitted"]


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def cohort(db: Session) -> dict[str, Any]:
    seed_reference_data(db)
    document = generate_cohort(60, seed=7, start=dt.date(2026, 2, 1))
    import_document(db, document)
    db.flush()
    return document


def _table(publication: Any, key: str) -> Any:
    return next(t for t in publication.tables if t.key == key)


def _value(table: Any, row: str, column: str) -> Any:
    return table.cell(table.rows.index(row), column)


def test_monitored_people_by_device_type_match_a_recount(
    db: Session, cohort: dict[str, Any]
) -> None:
    devices = {d["serial"]: d["type"] for d in cohort["devices"]}
    closes = PERIOD.closes
    expected: Counter[str] = Counter()
    for person in cohort["people"]:
        worn = [
            GROUP[devices[a["device"]]]
            for order in person["orders"]
            for a in order["allocations"]
            if _when(a["fitted_at"]) < closes
            and (a["removed_at"] is None or _when(a["removed_at"]) >= closes)
        ]
        if worn:
            expected[min(worn, key=RANK.index)] += 1
    table = _table(compute(db, PERIOD), "1a")
    assert sum(expected.values()) > 0
    for group in RANK:
        assert _value(table, TOTAL, group) == expected[group]
    assert _value(table, TOTAL, TOTAL) == sum(expected.values())


def test_orders_started_fitted_and_ended_match_a_recount(
    db: Session, cohort: dict[str, Any]
) -> None:
    orders = [o for p in cohort["people"] for o in p["orders"]]

    def in_period(day: str) -> bool:
        return PERIOD.start <= dt.date.fromisoformat(day) <= PERIOD.end

    new_orders = sum(1 for o in orders if in_period(o["start_date"]))
    fittings = sum(
        1
        for o in orders
        for a in o["allocations"]
        if PERIOD.opens <= _when(a["fitted_at"]) < PERIOD.closes
    )
    ended = Counter(
        o["end_reason"] for o in orders if o["status"] == "ended" and in_period(o["end_date"])
    )
    publication = compute(db, PERIOD)
    starts = _table(publication, "2a")
    assert _value(starts, TOTAL, "New orders") == new_orders
    assert _value(starts, TOTAL, "New fittings") == fittings
    outcome = _table(publication, "3a")
    assert _value(outcome, TOTAL, "Completed") == ended["completed"]
    assert _value(outcome, TOTAL, "Revoked") == ended["revoked"]
    assert _value(outcome, TOTAL, TOTAL) == sum(ended.values())
    if ended:
        rate = round(ended["completed"] / sum(ended.values()) * 100, 1)
        assert _value(outcome, TOTAL, "Compliance rate (%)") == rate


def test_breakdowns_add_up_to_the_total(db: Session, cohort: dict[str, Any]) -> None:
    publication = compute(db, PERIOD)
    for table in publication.tables:
        for column in table.measure.count_columns:
            values = table.values[column]
            assert sum(values[:-1]) == pytest.approx(values[-1]) or table.rows == [TOTAL], table.key


def test_violation_and_alert_rates_match_a_recount(db: Session, cohort: dict[str, Any]) -> None:
    orders = list(
        db.scalars(select(Order).where(Order.status == "active").order_by(Order.id)).all()
    )
    assert orders
    start = dt.datetime(2026, 2, 10, 22, tzinfo=dt.UTC)
    rules = ["curfew.absence.gps", "tamper.strap", "zone.exclusion.entry"]
    for index, order in enumerate(orders[:10]):
        for k in range(index % 3 + 1):
            v = Violation(
                allocation_id=order.allocations[0].id,
                order_id=order.id,
                person_id=order.person_id,
                condition_key=0,
                rule_id=rules[k],
                rule_version="1",
                rule_set_version="t",
                start=start + dt.timedelta(hours=k),
                end=None,
                severity="high",
                status="confirmed",
                evidence_fixes=[],
                evidence_events=[],
            )
            db.add(v)
            db.flush()
            db.add(
                Alert(
                    kind="violation",
                    subject_key=f"violation:{v.id}",
                    violation_id=v.id,
                    order_id=order.id,
                    person_id=order.person_id,
                    violation_type=v.rule_id,
                    severity="high",
                    summary="s",
                    event_at=v.start,
                    received_at=v.start + dt.timedelta(seconds=30),
                    evaluated_at=v.start + dt.timedelta(seconds=40),
                    raised_at=v.start + dt.timedelta(seconds=60 * (k + 1)),
                    acknowledged_at=v.start + dt.timedelta(minutes=30),
                    outcome_due_at=v.start + dt.timedelta(days=1),
                )
            )
    db.flush()
    expected_violations = sum(i % 3 + 1 for i in range(min(10, len(orders))))
    publication = compute(db, PERIOD)
    table = _table(publication, "4a")
    days = table.values["Monitored days"][-1]
    assert _value(table, TOTAL, TOTAL) == expected_violations
    assert _value(table, TOTAL, "Curfew") == min(10, len(orders))
    assert _value(table, TOTAL, "Total per 100 days") == round(expected_violations / days * 100, 2)
    alerts = _table(publication, "5a")
    assert _value(alerts, TOTAL, "Alerts") == expected_violations
    to_alert = publication.performance["alert_path"]["violation_to_alert"]
    assert to_alert["count"] == expected_violations
    delays = sorted(60.0 * (k + 1) for i in range(min(10, len(orders))) for k in range(i % 3 + 1))
    assert to_alert["median_seconds"] == pytest.approx(delays[len(delays) // 2], abs=1)
    assert publication.performance["alert_path"]["violation_to_outcome"]["count"] == 0
    turnaround = publication.performance["data_request_turnaround"]
    assert turnaround == "not yet available" or turnaround["request_to_decision"]["count"] == 0


def test_published_tables_hide_small_cells(db: Session, cohort: dict[str, Any]) -> None:
    publication = compute(db, PERIOD, threshold=5)
    shown = 0
    for table in publication.tables:
        for r in range(len(table.rows)):
            for column in table.measure.count_columns:
                value = table.values[column][r]
                if 0 < value < 5:
                    assert table.cell(r, column) == "[c]", (table.key, table.rows[r], column)
                elif table.cell(r, column) != "[c]":
                    shown += 1
    assert shown > 0
