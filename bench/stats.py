"""Time to produce a quarter's full statistics for a national caseload with a year of history.

A year of full telemetry is far too much to simulate, so the history is built with bulk
inserts straight into the tables: people, orders (some ended in the year, a share awaiting
fitting), devices and allocations, and violations and alerts at about 1.25 alerts per person
per day (one alert per violation), spread over the year with realistic alert timings and
written in the order they were raised, as the service writes them. Then every table of the
publication (all breakdowns, suppressed for publication) and the service performance are
computed for the last quarter. SQLite by default (a temporary file); `--url` names another
database, e.g. PostgreSQL (its tables are dropped and rebuilt). Prints one JSON object with
the wall-clock and CPU time and the ratio of wall-clock time to the 10 s aim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, event, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert
from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.cases.validation import DISABILITY, ETHNICITY, ORDER_TYPES, SEX
from tagwatch.compliance.models import Violation
from tagwatch.compliance.rules import RULES
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.reports.statistics import Period, compute

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
AIM_SECONDS = 10.0
ALERTS_PER_PERSON_DAY = 1.25
YEAR_START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
QUARTER = Period(dt.date(2026, 7, 1), dt.date(2026, 9, 30))
DEVICE_TYPES = ("gps_tag", "rf_tag", "alcohol_tag")
REGIONS = [(f"R{r}", [f"R{r}-U{u}" for u in range(12)]) for r in range(12)]
CHUNK = 200_000


def _chunks(session: Session, table: type, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[start : start + CHUNK])


def build(session: Session, people: int, rng: np.random.Generator) -> dict[str, int]:
    days = 365
    now = YEAR_START + dt.timedelta(days=days)
    person_rows: list[dict[str, Any]] = [
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
    order_rows: list[dict[str, Any]] = []
    allocation_rows: list[dict[str, Any]] = []
    device_rows: list[dict[str, Any]] = []
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
    fitted = np.array([_us(a["fitted_at"]) for a in allocation_rows])
    removed = np.array([_us(a["removed_at"] or now) for a in allocation_rows])
    counts = rng.poisson(ALERTS_PER_PERSON_DAY * (removed - fitted) / 86_400e6)
    owner = np.repeat(np.arange(len(allocation_rows)), counts)
    n = len(owner)
    at = fitted[owner] + (rng.uniform(0, 1, n) * (removed - fitted)[owner]).astype(np.int64)
    raised = at + (rng.gamma(2.0, 40.0, n) * 1e6).astype(np.int64)
    in_raised_order = np.argsort(raised, kind="stable")
    owner, at, raised = owner[in_raised_order], at[in_raised_order], raised[in_raised_order]
    acked = raised + (rng.gamma(2.0, 600.0, n) * 1e6).astype(np.int64)
    done = raised < _us(now) - 2 * DAY_US
    outcome = acked + (rng.gamma(2.0, 8 * 3600.0, n) * 1e6).astype(np.int64)

    allocation_of = np.array([a["id"] for a in allocation_rows])[owner]
    order_of = np.array([a["order_id"] for a in allocation_rows])[owner]
    person_of = np.array([a["person_id"] for a in allocation_rows])[owner]
    rules = np.array(list(RULES))
    stamp = _stamp_text(session.get_bind().dialect.name)
    raw = session.connection().connection.driver_connection
    for begin in range(0, n, CHUNK):
        part = slice(begin, min(n, begin + CHUNK))
        ids = np.arange(part.start + 1, part.stop + 1)
        rule = rules[(ids * 7) % len(rules)].tolist()
        finished = done[part].tolist()
        at_s, raised_s = stamp(at[part]), stamp(raised[part])
        ids_l, orders_l = ids.tolist(), order_of[part].tolist()
        allocations_l, people_l = allocation_of[part].tolist(), person_of[part].tolist()
        violations = zip(
            ids_l,
            allocations_l,
            orders_l,
            people_l,
            rule,
            at_s,
            stamp(at[part] + 1_200_000_000),
            raised_s,
            raised_s,
            strict=True,
        )
        _write(raw, "violation", VIOLATION_COLUMNS, violations, VIOLATION_SHARED)
        to_outcome = (outcome[part] - at[part]).tolist()
        alerts = zip(
            ids_l,
            [f"violation:{i}" for i in ids_l],
            ids_l,
            orders_l,
            allocations_l,
            people_l,
            rule,
            rule,
            ["resolved" if f else "acknowledged" for f in finished],
            at_s,
            raised_s,
            raised_s,
            raised_s,
            raised_s,
            stamp(acked[part]),
            stamp(raised[part] + DAY_US),
            ["warning" if f else None for f in finished],
            [s if f else None for s, f in zip(stamp(outcome[part]), finished, strict=True)],
            raised_s,
            (raised[part] - at[part]).tolist(),
            (acked[part] - at[part]).tolist(),
            [d if f else None for d, f in zip(to_outcome, finished, strict=True)],
            strict=True,
        )
        _write(raw, "alert", ALERT_COLUMNS, alerts, ALERT_SHARED)
    return {
        "people": people,
        "orders": len(order_rows),
        "allocations": len(allocation_rows),
        "violations": n,
        "alerts": n,
    }


DAY_US = 86_400_000_000
VIOLATION_COLUMNS = (
    "id",
    "allocation_id",
    "order_id",
    "person_id",
    "rule_id",
    "start",
    '"end"',
    "first_found_at",
    "evaluated_at",
)
VIOLATION_SHARED = {
    "condition_key": 0,
    "rule_version": "1",
    "rule_set_version": "bench",
    "severity": "medium",
    "status": "confirmed",
    "needs_review": False,
    "evidence_fixes": "[]",
    "evidence_events": "[]",
}
ALERT_COLUMNS = (
    "id",
    "subject_key",
    "violation_id",
    "order_id",
    "allocation_id",
    "person_id",
    "violation_type",
    "summary",
    "status",
    "event_at",
    "received_at",
    "evaluated_at",
    "raised_at",
    "notified_at",
    "acknowledged_at",
    "outcome_due_at",
    "outcome",
    "outcome_at",
    "updated_at",
    "event_to_raised_us",
    "event_to_acknowledged_us",
    "event_to_outcome_us",
)
ALERT_SHARED = {
    "kind": "violation",
    "severity": "medium",
    "needs_tamper_review": False,
    "escalated_to": "[]",
}


def _us(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _stamp_text(dialect: str) -> Callable[[np.ndarray], list[str]]:
    """Timestamps as the driver stores them: naive UTC text on SQLite, UTC-marked otherwise."""
    suffix = "" if dialect == "sqlite" else "+00"

    def text(microseconds: np.ndarray) -> list[str]:
        stamps = np.datetime_as_string(microseconds.astype("datetime64[us]"), unit="us")
        return [t.replace("T", " ") + suffix for t in stamps.tolist()]

    return text


def _write(
    raw: Any,
    table: str,
    columns: tuple[str, ...],
    rows: Iterable[tuple[Any, ...]],
    shared: dict[str, Any],
) -> None:
    """Rows straight through the driver (executemany on SQLite, COPY on PostgreSQL), each
    followed by the values every row shares."""
    names = ", ".join((*columns, *shared))
    constants = tuple(shared.values())
    cursor = raw.cursor()
    if isinstance(raw, sqlite3.Connection):
        marks = ", ".join("?" * (len(columns) + len(shared)))
        cursor.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", (r + constants for r in rows)
        )
        return
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row + constants)


def _loading_engine(url: str) -> Engine:
    """The engine the history is written with. On SQLite: no rollback journal and no syncing
    (a crash can only spoil the benchmark's own database) and a 1 GB page cache for the index
    inserts; the statistics are then timed through the application's own engine."""
    if not url.startswith("sqlite"):
        return make_engine(url)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _for_loading(dbapi_connection: Any, _record: Any) -> None:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    return engine


def _build_once(url: str, people: int, seed: int, reuse: bool) -> tuple[dict[str, int], float]:
    engine = _loading_engine(url)
    try:
        with Session(engine) as session:
            if reuse and _holds(session, people):
                return _sizes(session), 0.0
        metadata = load_metadata()
        metadata.drop_all(engine)
        metadata.create_all(engine)
        began = time.perf_counter()
        with Session(engine) as session:
            sizes = build(session, people, np.random.default_rng(seed))
            session.commit()
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:  # planner statistics, as autovacuum keeps them
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE"
                )
        return sizes, time.perf_counter() - began
    finally:
        engine.dispose()


def _holds(session: Session, people: int) -> bool:
    try:
        return session.scalar(select(func.count()).select_from(Person)) == people
    except DBAPIError:  # no tables yet
        session.rollback()
        return False


def _sizes(session: Session) -> dict[str, int]:
    def count(model: type) -> int:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)

    return {
        "people": count(Person),
        "orders": count(Order),
        "allocations": count(Allocation),
        "violations": count(Violation),
        "alerts": count(Alert),
    }


class _ServerCpu:
    """CPU time of a PostgreSQL session's server process, when it runs on this machine."""

    def __init__(self, session: Session) -> None:
        self.stat: Path | None = None
        self.began = 0.0
        if session.get_bind().dialect.name == "postgresql":
            pid = session.scalar(select(func.pg_backend_pid()))
            self.stat = Path(f"/proc/{pid}/stat")
            self.began = self._seconds() or 0.0

    def _seconds(self) -> float | None:
        if self.stat is None or not self.stat.exists():
            return None
        # utime and stime, in clock ticks, follow the parenthesised command name.
        fields = self.stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def used(self) -> float | None:
        now = self._seconds()
        return None if now is None else now - self.began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the history already in --url when it has --people people",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'stats.db'}"
        sizes, build_seconds = _build_once(url, args.people, args.seed, args.reuse)
        engine = make_engine(url)
        load_before = os.getloadavg()
        with Session(engine) as session:
            server = _ServerCpu(session)
            began, cpu_began = time.perf_counter(), time.process_time()
            publication = compute(session, QUARTER, threshold=5)
            seconds = time.perf_counter() - began
            cpu_seconds = time.process_time() - cpu_began
            server_cpu_seconds = server.used()
        load_after = os.getloadavg()
        engine.dispose()
    alerts_in_quarter = next(t for t in publication.tables if t.key == "5a").values["Alerts"][-1]
    backend = engine.dialect.name
    print(
        json.dumps(
            {
                "benchmark": "quarter's full statistics (all tables and breakdowns, suppressed) with a year of history",  # noqa: E501
                "backend": backend,
                "history": f"bulk-inserted, not simulated telemetry: {sizes['people']} people, {sizes['orders']} orders, "  # noqa: E501
                f"{sizes['allocations']} allocations, {sizes['violations']} violations and as many alerts over 365 days "  # noqa: E501
                f"(about {ALERTS_PER_PERSON_DAY} alerts per person per day)",
                **sizes,
                "tables": len(publication.tables),
                "alerts_in_quarter": int(alerts_in_quarter),
                "build_seconds": round(build_seconds, 1),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "cpu_seconds_counts": "this process"
                + (" (SQLite runs in it)" if backend == "sqlite" else ", not the database server"),
                **(
                    {}
                    if server_cpu_seconds is None
                    else {
                        "database_backend_cpu_seconds": round(server_cpu_seconds, 2),
                        "database_backend_cpu_counts": "the session's server process, "
                        "not any parallel workers",
                    }
                ),
                "load_average_1min_before_after": [
                    round(load_before[0], 2),
                    round(load_after[0], 2),
                ],
                "cores": os.cpu_count(),
                "aim_seconds": AIM_SECONDS,
                "ratio_to_aim": round(seconds / AIM_SECONDS, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
