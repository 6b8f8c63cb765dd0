"""Data request fulfilment: from approval to files ready, for a 7-day request.

One person with a fix a minute for 7 days (about 10,000 fixes), 15-second fixes during three
two-hour breaches and a few implausible fixes, in a store that also holds BENCH_REQUEST_PEOPLE
other people (1,000 by default) with a fix a minute over the same 7 days (about 10 million
fixes, made inside PostgreSQL with generate_series and indexed as the models declare).
The figure is the wall time of `approve` (which fulfils: reads the fixes, writes CSV, GeoJSON,
KML and the PDF summary with their SHA-256) plus the commit, median of BENCH_REQUEST_RUNS
approvals (3). The aim is under 5 seconds.

Prints one JSON object. Environment: TAGWATCH_BENCH_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/tw_requests_bench; created when missing; the
store is built once and reused while it holds the same cohort).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time

import psycopg
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata
from tagwatch.requests import service
from tagwatch.requests.models import DataRequest
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import GpsFix

AIM_S = 5.0
START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
DAYS = 7
END = START + dt.timedelta(days=DAYS)
BREACHES = [(1, 14), (3, 20), (5, 9)]  # (day, hour) each starting a 2-hour breach
TARGET_REF = "TWBENCH0000"


def _ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{parsed.database}"')


def _add_people(engine: Engine, people: int) -> None:
    """The target and the other people, each on an order with a GPS tag (the models' own
    defaults fill everything not named here)."""
    with Session(engine) as session, session.begin():
        for n in range(people + 1):
            person = Person(
                ref=f"TWBENCH{n:04d}",
                crn=f"B{n:06d}",
                date_of_birth=dt.date(1990, 1, 1) + dt.timedelta(days=n),
                sex="male",
                gender="man",
                ethnicity="W1",
                disability="not_recorded",
                nationality="GBR",
                religion="not_recorded",
                language="en",
            )
            order = Order(
                ref=f"ORD-{person.ref}",
                person=person,
                type="community_order",
                status="active",
                notifying_org_kind="court",
                notifying_org_name="Leeds Magistrates' Court",
                responsible_org_kind="probation",
                responsible_org_name="Yorkshire Probation",
                region_code="YH",
                delivery_unit_code="YH-LDS",
                responsible_officer="officer",
                start_date=dt.date(2026, 1, 1),
                end_date=dt.date(2027, 1, 1),
            )
            device = Device(serial=f"GPS-{person.ref}", type="gps_tag", model="T1", batch="B1")
            session.add(
                Allocation(
                    device=device,
                    order=order,
                    person=person,
                    fitted_at=START - dt.timedelta(days=1),
                )
            )


def _build_store(url: str, people: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    metadata = load_metadata()
    metadata.create_all(engine)
    table = GpsFix.__table__
    with engine.begin() as conn:
        # Bulk load without the indexes, then build them once: what a restore would do.
        for index in table.indexes:
            index.drop(conn)
        conn.execute(text("ALTER TABLE gps_fix DROP CONSTRAINT uq_gps_fix_dedupe_key"))
    _add_people(engine, people)
    with engine.begin() as conn:
        # A fix a minute for everyone (the target included), wandering around Leeds.
        conn.execute(
            text(
                """
                INSERT INTO gps_fix (dedupe_key, device_serial, allocation_id, t_ms,
                    received_ms, lat, lon, accuracy_m, source)
                SELECT 'GPS-' || p.ref || '|gps|' || t, 'GPS-' || p.ref, a.id, t, t,
                    53.80 + 0.03 * sin(t / 3.6e6 + a.id) + 0.002 * sin(t / 6e4),
                    -1.55 + 0.05 * cos(t / 5.4e6 + a.id), 8, 'gnss'
                FROM allocation a JOIN person p ON p.id = a.person_id,
                    generate_series(:low, :high, 60000) t
                """
            ),
            {"low": to_ms(START), "high": to_ms(END) - 60_000},
        )
        target = conn.execute(
            select(Allocation.id).join(Person).where(Person.ref == TARGET_REF)
        ).scalar_one()
        for day, hour in BREACHES:
            low = to_ms(START + dt.timedelta(days=day, hours=hour))
            conn.execute(
                text(
                    """
                    INSERT INTO gps_fix (dedupe_key, device_serial, allocation_id, t_ms,
                        received_ms, lat, lon, accuracy_m, source, implausible_reason)
                    SELECT 'GPS-' || :ref || '|gps|' || t, 'GPS-' || :ref, :alloc, t, t,
                        53.79 + 0.01 * sin(t / 9e5), -1.54, 6, 'gnss',
                        CASE WHEN (t / 15000) % 97 = 0 THEN 'speed' END
                    FROM generate_series(:low, :high, 15000) t WHERE t % 60000 <> 0
                    """
                ),
                {"ref": TARGET_REF, "alloc": target, "low": low, "high": low + 7_200_000},
            )
        conn.execute(
            text("ALTER TABLE gps_fix ADD CONSTRAINT uq_gps_fix_dedupe_key UNIQUE (dedupe_key)")
        )
        for index in table.indexes:
            index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _store_ready(url: str, people: int) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Person)).scalar_one() == people + 1
    except Exception:  # no tables yet
        return False
    finally:
        engine.dispose()


def main() -> None:
    url = os.environ.get(
        "TAGWATCH_BENCH_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/tw_requests_bench",
    )
    people = int(os.environ.get("BENCH_REQUEST_PEOPLE", "1000"))
    runs = int(os.environ.get("BENCH_REQUEST_RUNS", "3"))
    _ensure_database(url)
    built_s = 0.0
    if not _store_ready(url, people):
        began = time.perf_counter()
        _build_store(url, people)
        built_s = time.perf_counter() - began
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    officer = Principal(
        None,
        "bench_officer",
        "Bench Officer",
        frozenset({"police"}),
        frozenset({"request:create", "request:read"}),
        force_code="WYP",
    )
    approver = Principal(
        None,
        "bench_approver",
        "Bench Approver",
        frozenset({"approver"}),
        frozenset({"request:read", "request:approve"}),
    )
    timings: list[float] = []
    fixes = 0
    sizes: dict[str, int] = {}
    with unit_of_work(factory) as session:
        stored = session.scalar(select(func.count()).select_from(GpsFix)) or 0
    for _ in range(runs):
        with unit_of_work(factory) as session:
            request = service.create_request(
                session,
                officer,
                service.NewRequest(TARGET_REF, START, END, "Benchmark", "crime", "13/1/26"),
            )
            request_id = request.id
        began = time.perf_counter()
        with unit_of_work(factory) as session:
            approved = service.approve(session, approver, request_id, "Benchmark")
            fixes = approved.fix_count or 0
            sizes = {f.format: f.size_bytes for f in approved.files}
        timings.append(time.perf_counter() - began)
    with unit_of_work(factory) as session:  # leave the store as it was found
        session.query(DataRequest).delete()
    engine.dispose()
    median = statistics.median(timings)
    print(
        json.dumps(
            {
                "benchmark": "data request fulfilment, approval to files ready (7 days)",
                "approval_to_files_s": round(median, 3),
                "runs_s": [round(t, 3) for t in timings],
                "fixes_in_request": fixes,
                "fixes_in_store": stored,
                "other_people": people,
                "file_bytes": sizes,
                "aim_s": AIM_S,
                "ratio_to_aim": round(median / AIM_S, 3),
                "store_build_s": round(built_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
