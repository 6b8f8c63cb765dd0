"""Time to produce a quarter's full statistics for a national caseload with a year of history.

A year of full telemetry is far too much to simulate, so the history is built with bulk
inserts straight into the tables: people, orders (some ended in the year, a share awaiting
fitting), devices and allocations, and violations and alerts at about 1.25 alerts per person
per day (one alert per violation), spread over the year with realistic alert timings. Then
every table of the publication (all breakdowns, suppressed for publication) and the service
performance are computed for the last quarter, on SQLite. Prints one JSON object
with the figure and its ratio against the 10 s aim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.cases.validation import DISABILITY, ETHNICITY, ORDER_TYPES, SEX
from tagwatch.compliance.rules import RULES
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.reports.statistics import Period, compute

AIM_SECONDS = 10.0
ALERTS_PER_PERSON_DAY = 1.25
YEAR_START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
QUARTER = Period(dt.date(2026, 7, 1), dt.date(2026, 9, 30))
DEVICE_TYPES = ("gps_tag", "rf_tag", "alcohol_tag")
REGIONS = [(f"R{r}", [f"R{r}-U{u}" for u in range(12)]) for r in range(12)]
CHUNK = 200_000


def _chunks(session: Session, table: type, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[start : start + CHUNK])


def build(session: Session, people: int, rng: np.random.Generator) -> dict[str, int]:
    days = 365
    now = YEAR_START + dt.timedelta(days=days)
    person_rows = [
        {
            "id": i + 1,
            "ref": f"TW{i + 1:08d}",
            "date_of_birth": dt.date(1950 + int(rng.integers(0, 55)), 1 + i % 12, 1 + i % 28),
            "sex": SEX[int(rng.choice(5, p=[0.86, 0.1, 0.01, 0.02, 0.01]))],
            "gender": "not_recorded",
            "ethnicity": ETHNICITY[int(rng.integers(0, len(ETHNICITY)))],
            "disability": DISABILITY[i % 4],
            "nationality": ("GBR", "POL", "not_recorded")[int(rng.choice(3, p=[0.8, 0.15, 0.05]))],
            "religion": "not_recorded",
            "language": "en",
            "interpreter_needed": False,
            "restricted": False,
        }
        for i in range(people)
    ]
    _chunks(session, Person, person_rows)
    # One current order each, and an earlier order ended in the year for one person in five.
    order_rows, allocation_rows, device_rows = [], [], []
    for i in range(people):
        region, units = REGIONS[i % len(REGIONS)]
        for earlier in (False, True) if i % 5 == 0 else (False,):
            oid = len(order_rows) + 1
            start = YEAR_START + dt.timedelta(days=int(rng.integers(0, 200 if earlier else 330)))
            ended = earlier
            end = start + dt.timedelta(days=int(rng.integers(30, 150)))
            status = "ended" if ended else ("awaiting_fitting" if i % 97 == 0 else "active")
            order_rows.append(
                {
                    "id": oid,
                    "ref": f"ORD{oid:010d}",
                    "person_id": i + 1,
                    "type": ORDER_TYPES[i % len(ORDER_TYPES)],
                    "status": status,
                    "end_reason": ("completed", "revoked", "expired")[i % 3] if ended else None,
                    "notifying_org_kind": "court",
                    "notifying_org_name": "Court",
                    "responsible_org_kind": "probation",
                    "responsible_org_name": "Probation",
                    "region_code": region,
                    "delivery_unit_code": units[i % len(units)],
                    "responsible_officer": f"officer{i % 600}",
                    "start_date": start.date(),
                    "end_date": end.date() if ended else (start + dt.timedelta(days=365)).date(),
                    "fitting_deadline": start + dt.timedelta(days=1),
                    "version": 1,
                    "created_at": start,
                    "updated_at": start,
                }
            )
            if status == "awaiting_fitting":
                continue
            did = len(device_rows) + 1
            dtype = DEVICE_TYPES[int(rng.choice(3, p=[0.5, 0.36, 0.14]))]
            device_rows.append(
                {"id": did, "serial": f"D{did:09d}", "type": dtype, "model": "M", "batch": "B"}
            )
            allocation_rows.append(
                {
                    "id": did,
                    "device_id": did,
                    "order_id": oid,
                    "person_id": i + 1,
                    "fitted_at": start + dt.timedelta(hours=6),
                    "removed_at": end if ended else None,
                }
            )
    _chunks(session, Order, order_rows)
    _chunks(session, Device, device_rows)
    _chunks(session, Allocation, allocation_rows)

    # Violations and alerts: each allocation's monitored days times the daily rate, made in
    # arrays and written through the driver (millions of rows).
    fitted = np.array([a["fitted_at"].timestamp() for a in allocation_rows])  # type: ignore[attr-defined]
    removed = np.array([(a["removed_at"] or now).timestamp() for a in allocation_rows])  # type: ignore[attr-defined]
    counts = rng.poisson(ALERTS_PER_PERSON_DAY * (removed - fitted) / 86400)
    owner = np.repeat(np.arange(len(allocation_rows)), counts)
    n = len(owner)
    at = fitted[owner] + rng.uniform(0, 1, n) * (removed - fitted)[owner]
    raised = at + rng.gamma(2.0, 40.0, n)
    acked = raised + rng.gamma(2.0, 600.0, n)
    done = raised < now.timestamp() - 2 * 86400
    outcome = acked + rng.gamma(2.0, 8 * 3600.0, n)

    def text(seconds: np.ndarray) -> list[str]:
        stamps = np.datetime_as_string((seconds * 1e6).astype("datetime64[us]"), unit="us")
        return [t.replace("T", " ") for t in stamps.tolist()]

    at_s, raised_s, acked_s, outcome_s = text(at), text(raised), text(acked), text(outcome)
    due_s, end_s = text(raised + 86400), text(at + 1200)
    ids = [a["id"] for a in allocation_rows]
    orders_of = [a["order_id"] for a in allocation_rows]
    people_of = [a["person_id"] for a in allocation_rows]
    rules = list(RULES)
    owners = owner.tolist()
    done_l = done.tolist()
    violation_sql = (
        "INSERT INTO violation (id, allocation_id, order_id, person_id, condition_key, rule_id, rule_version,"  # noqa: E501
        ' rule_set_version, start, "end", severity, status, needs_review, evidence_fixes, evidence_events,'  # noqa: E501
        " first_found_at, evaluated_at) VALUES (?, ?, ?, ?, 0, ?, '1', 'bench', ?, ?, 'medium', 'confirmed', 0,"  # noqa: E501
        " '[]', '[]', ?, ?)"
    )
    alert_sql = (
        "INSERT INTO alert (id, kind, subject_key, violation_id, order_id, allocation_id, person_id, violation_type,"  # noqa: E501
        " severity, summary, needs_tamper_review, status, event_at, received_at, evaluated_at, raised_at,"  # noqa: E501
        " notified_at, acknowledged_at, escalated_to, outcome_due_at, outcome, outcome_at, updated_at)"  # noqa: E501
        " VALUES (?, 'violation', ?, ?, ?, ?, ?, ?, 'medium', ?, 0, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?)"  # noqa: E501
    )
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    for begin in range(0, n, CHUNK):
        violations, alerts = [], []
        for k in range(begin, min(n, begin + CHUNK)):
            a = owners[k]
            vid = k + 1
            rule = rules[(vid * 7) % len(rules)]
            violations.append(
                (
                    vid,
                    ids[a],
                    orders_of[a],
                    people_of[a],
                    rule,
                    at_s[k],
                    end_s[k],
                    raised_s[k],
                    raised_s[k],
                )
            )
            alerts.append(
                (
                    vid,
                    f"violation:{vid}",
                    vid,
                    orders_of[a],
                    ids[a],
                    people_of[a],
                    rule,
                    rule,
                    "resolved" if done_l[k] else "acknowledged",
                    at_s[k],
                    raised_s[k],
                    raised_s[k],
                    raised_s[k],
                    raised_s[k],
                    acked_s[k],
                    due_s[k],
                    "warning" if done_l[k] else None,
                    outcome_s[k] if done_l[k] else None,
                    raised_s[k],
                )
            )
        cursor.executemany(violation_sql, violations)
        cursor.executemany(alert_sql, alerts)
    return {
        "people": people,
        "orders": len(order_rows),
        "allocations": len(allocation_rows),
        "violations": n,
        "alerts": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'stats.db'}"
        engine = make_engine(url)
        metadata = load_metadata()
        metadata.drop_all(engine)
        metadata.create_all(engine)
        began = time.perf_counter()
        with Session(engine) as session:
            sizes = build(session, args.people, np.random.default_rng(args.seed))
            session.commit()
        build_seconds = time.perf_counter() - began
        with Session(engine) as session:
            began = time.perf_counter()
            publication = compute(session, QUARTER, threshold=5)
            seconds = time.perf_counter() - began
        engine.dispose()
    alerts_in_quarter = next(t for t in publication.tables if t.key == "5a").values["Alerts"][-1]
    print(
        json.dumps(
            {
                "benchmark": "quarter's full statistics (all tables and breakdowns, suppressed) with a year of history",  # noqa: E501
                "backend": url.split(":", 1)[0],
                "history": f"bulk-inserted, not simulated telemetry: {sizes['people']} people, {sizes['orders']} orders, "  # noqa: E501
                f"{sizes['allocations']} allocations, {sizes['violations']} violations and as many alerts over 365 days "  # noqa: E501
                f"(about {ALERTS_PER_PERSON_DAY} alerts per person per day)",
                **sizes,
                "tables": len(publication.tables),
                "alerts_in_quarter": int(alerts_in_quarter),
                "build_seconds": round(build_seconds, 1),
                "seconds": round(seconds, 2),
                "aim_seconds": AIM_SECONDS,
                "ratio_to_aim": round(seconds / AIM_SECONDS, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
