"""Every table of every breakdown, and the service performance, equal a plain recount.

The history is a simulator cohort with violations of every rule (and a retired rule, and a
violation on no order), some withdrawn or only possible, raised, acknowledged and resolved
through the alert service at random times, so the stored delays are filled as they are in
use. The recount reads whole rows and counts them in Python, a second and simpler way: no
SQL aggregation, a sweep line for monitored days, datetimes for delays.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.alerts import service as alerts
from tagwatch.alerts.models import Alert, AlertStatus, Outcome
from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.cases.orderfile import import_document
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.compliance.models import Violation
from tagwatch.compliance.rules import RULES
from tagwatch.reports import repository
from tagwatch.reports.statistics import TOTAL, Period, breakdowns, compute
from tagwatch.settings import Settings
from tagwatch.simulate.cohort import generate_cohort

PERIOD = Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
OPENS, CLOSES = PERIOD.opens, PERIOD.closes
SETTINGS = Settings(notifiers="outbox", outcome_deadline_hours=24)
# A retired rule's violations count as Other; a rule id with no dot is its own prefix.
RULE_IDS = [*RULES, "legacy.retired_rule", "curfew"]

RANK = ["GPS", "Alcohol", "Curfew (RF)", "Non-fitted"]
DEVICE_GROUP = {
    "gps_tag": "GPS",
    "alcohol_tag": "Alcohol",
    "rf_tag": "Curfew (RF)",
    "home_monitoring_unit": "Curfew (RF)",
    "non_fitted_device": "Non-fitted",
}
VIOLATION_GROUP = {
    "curfew": "Curfew",
    "zone": "Zones",
    "tamper": "Tamper",
    "battery": "Battery",
    "device": "Communication or location",
    "home_unit": "Home unit",
    "alcohol": "Alcohol",
    "checkin": "Check-in",
}
ENDED = {"completed": "Completed", "revoked": "Revoked", "expired": "Expired"}


def _later(rng: np.random.Generator, moment: dt.datetime, mean_seconds: float) -> dt.datetime:
    """A random later moment, to the microsecond."""
    return moment + dt.timedelta(microseconds=int(rng.gamma(2.0, mean_seconds / 2) * 1e6))


@pytest.fixture
def history(db: Session, caller: Callable[..., Principal]) -> None:
    seed_reference_data(db)
    import_document(db, generate_cohort(80, seed=6, start=dt.date(2026, 2, 10)))
    db.flush()
    rng = np.random.default_rng(5)
    officer = caller({"alert:acknowledge", "alert:outcome", "restricted:read"}, username="rc")
    allocations = list(db.scalars(select(Allocation).order_by(Allocation.id)))
    assert allocations
    for index, allocation in enumerate(allocations):
        for _ in range(int(rng.integers(0, 7))):
            start = (
                OPENS - dt.timedelta(days=15) + dt.timedelta(seconds=rng.uniform(0, 120 * 86400))
            )
            start = start.replace(microsecond=int(rng.integers(0, 1_000_000)))
            violation = Violation(
                allocation_id=allocation.id,
                order_id=None if index == 0 else allocation.order_id,
                person_id=allocation.person_id,
                condition_key=0,
                rule_id=RULE_IDS[int(rng.integers(len(RULE_IDS)))],
                rule_version="1",
                rule_set_version="recount",
                start=start,
                end=None,
                severity="medium",
                status="confirmed" if rng.random() < 0.9 else "possible",
                needs_review=False,
                evidence_fixes=[],
                evidence_events=[],
                withdrawn_at=start + dt.timedelta(hours=2) if rng.random() < 0.1 else None,
            )
            db.add(violation)
            db.flush()
            raised_at = _later(rng, start, 80)
            raised = alerts.sync_violations(
                db, [violation.id], evaluated_at=raised_at, settings=SETTINGS, now=raised_at
            )
            if not raised or rng.random() < 0.2:
                continue
            acknowledged_at = _later(rng, raised_at, 1200)
            alerts.acknowledge(db, officer, raised[0].id, acknowledged_at)
            if rng.random() < 0.6:
                outcome_at = _later(rng, acknowledged_at, 16 * 3600)
                alerts.record_outcome(
                    db, officer, raised[0].id, Outcome.NO_ACTION, "recounted", outcome_at
                )
    # Alerts that are not about a violation count as alerts but have no violation delays.
    assert alerts.raise_fitting_overdue(db, settings=SETTINGS, now=CLOSES - dt.timedelta(days=1))
    db.flush()


def _monitored_days(windows: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """Seconds with at least one device fitted, by a sweep over the windows' ends."""
    edges = sorted([(begin, 1) for begin, _ in windows] + [(end, -1) for _, end in windows])
    fitted, seconds, since = 0, 0.0, None
    for moment, step in edges:
        if fitted > 0 and since is not None:
            seconds += (moment - since).total_seconds()
        fitted += step
        since = moment
    return seconds / 86400


def recount(db: Session) -> dict[str, dict[int, dict[str, float]]]:
    """measure -> order id -> column -> value, from whole rows."""
    counted: dict[str, dict[int, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float))
    )
    orders = {o.id: o for o in db.scalars(select(Order))}
    fitted = list(db.execute(select(Allocation, Device.type).join(Device)))

    worn: dict[int, tuple[int, int]] = {}
    windows: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for allocation, device_type in fitted:
        if allocation.fitted_at >= CLOSES:
            continue
        removed = allocation.removed_at or CLOSES
        if removed >= CLOSES:
            choice = (RANK.index(DEVICE_GROUP[device_type]), allocation.order_id)
            worn[allocation.person_id] = min(worn.get(allocation.person_id, choice), choice)
        if allocation.fitted_at >= OPENS:
            counted["starts"][allocation.order_id]["New fittings"] += 1
        begin, end = max(allocation.fitted_at, OPENS), min(removed, CLOSES)
        if end > begin:
            windows[allocation.order_id].append((begin, end))
    for rank, order_id in worn.values():
        counted["monitored"][order_id][RANK[rank]] += 1
    for order_id, spans in windows.items():
        days = _monitored_days(spans)
        counted["violations"][order_id]["Monitored days"] = days
        counted["alerts"][order_id]["Monitored days"] = days

    for order in orders.values():
        if PERIOD.start <= order.start_date <= PERIOD.end:
            counted["starts"][order.id]["New orders"] += 1
        in_period = PERIOD.start <= order.end_date <= PERIOD.end
        if order.status == "ended" and in_period and order.end_reason in ENDED:
            counted["ended"][order.id][ENDED[order.end_reason]] += 1
    for v in db.scalars(select(Violation)):
        if OPENS <= v.start < CLOSES and v.withdrawn_at is None and v.order_id in orders:
            group = VIOLATION_GROUP.get(v.rule_id.split(".")[0], "Other")
            counted["violations"][v.order_id][group] += 1
    for a in db.scalars(select(Alert)):
        if OPENS <= a.raised_at < CLOSES and a.order_id in orders:
            counted["alerts"][a.order_id]["Alerts"] += 1
    return counted


def test_every_table_and_breakdown_equals_the_recount(db: Session, history: None) -> None:
    publication = compute(db, PERIOD)
    counted = recount(db)
    orders = {o.id: o for o in db.scalars(select(Order))}
    people = {p.id: p for p in db.scalars(select(Person))}
    kinds = breakdowns(repository.labels(db, "region"), repository.labels(db, "delivery_unit"))
    assert sum(len(by_order) for by_order in counted.values()) > 100
    assert counted["violations"] and counted["alerts"] and counted["ended"]
    checked = 0
    for table in publication.tables:
        kind = kinds["abcdefghi".index(table.key[1])]
        expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for order_id, columns in counted[table.measure.key].items():
            order = orders[order_id]
            category = kind.category(order, people[order.person_id], PERIOD.end)
            for column, value in columns.items():
                if kind.key != "all":  # the table for all people has only its Total row
                    expected[category][column] += value
                expected[TOTAL][column] += value
        for category in expected:
            assert category in table.rows, (table.key, category)
        for r, row in enumerate(table.rows):
            for column in table.measure.count_columns:
                if column == TOTAL:
                    want = sum(expected[row][p] for p in table.measure.parts)
                else:
                    want = expected[row][column]
                assert table.values[column][r] == pytest.approx(want), (table.key, row, column)
                checked += 1
    assert len(publication.tables) == 45
    assert checked > 1000


def _percentiles(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"count": 0, "median_seconds": None, "p95_seconds": None}
    median, p95 = np.percentile(seconds, [50, 95])
    return {
        "count": len(seconds),
        "median_seconds": round(float(median), 1),
        "p95_seconds": round(float(p95), 1),
    }


def test_the_alert_path_and_overdue_alerts_equal_the_recount(db: Session, history: None) -> None:
    performance = compute(db, PERIOD).performance
    raised = [
        a
        for a in db.scalars(select(Alert))
        if OPENS <= a.raised_at < CLOSES and a.kind == "violation"
    ]
    steps = {
        "violation_to_alert": "raised_at",
        "violation_to_acknowledgement": "acknowledged_at",
        "violation_to_outcome": "outcome_at",
    }
    for stage, step in steps.items():
        seconds = [
            (getattr(a, step) - a.event_at).total_seconds()
            for a in raised
            if getattr(a, step) is not None
        ]
        assert seconds, stage
        assert performance["alert_path"][stage] == _percentiles(seconds), stage
    overdue = [
        a
        for a in db.scalars(select(Alert))
        if a.raised_at < CLOSES
        and a.outcome_due_at < CLOSES
        and a.outcome_at is None
        and a.status != AlertStatus.WITHDRAWN
    ]
    assert overdue
    assert performance["alerts_without_outcome_past_deadline"] == len(overdue)
