"""One crime against 30 days of fixes for 10,000 people, the way a real query runs: through the
store. Prints one JSON object.

The store is tagwatch's own schema on SQLite (the embedded default), in a file in a
temporary directory:

- 10,000 people (BENCH_SINGLE_PEOPLE), each on an order wearing one GPS tag for the month;
- `track_hour_box` for all 30 days (BENCH_SINGLE_DAYS): one box per device and hour, about
  7.2 million rows. Day 15 is built by `refresh_track_boxes` from the fixes stored in
  `gps_fix` (timed: the refresh ingest would run); the other days are made from their fixes
  in memory with the same `boxes_of` and inserted directly;
- `gps_fix` holds day 15 in full (one fix a minute for everybody, about 14 million rows,
  with the table's usual indexes), and the crimes fall in day 15. The other 29 days are not
  stored as fixes (420 million rows would take hours to load here): no query below reads
  them, and the boxes, which a query does read, cover all 30 days. A B-tree lookup on a
  table 30 times bigger is one or two levels deeper.

How the 30 days are made: `crime_data.synthetic_tracks` makes one day for everybody (home,
up to four places, straight lines between them, one fix a minute, outages); day d repeats
it shifted by d days with fresh GPS noise (normal, 3 m) on every fix, so people keep their
homes and habits and no two days are the same fixes.

The query for each crime (BENCH_SINGLE_CRIMES, half near somebody's track, windows of 0 to
12 hours): the devices whose boxes come within the radius in the window, their allocations,
their fixes in the window (`load_fixes`), `person_tracks`, `match_crimes` - what
`service.run_matching` does for a batch of up to 50 crimes. Wall clock and this process's
CPU time (SQLite runs inside it, so its work is counted). The result
of each crime is checked against the matcher run over every stored fix of day 15 in memory:
identical match sets (the run stops otherwise). One crime, the longest, is also answered
the old way (every fix of its window read) for comparison.

Loading the store takes most of the run (about 11 of its 17 minutes on 2 shared cores:
29 days of boxes made in memory, 14 million rows into gps_fix, the refresh of one day); the
crimes take seconds. BENCH_SINGLE_PEOPLE=300 runs in a quarter of a minute.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from crime_data import DAY_MS, START_MS, synthetic_crimes, synthetic_tracks
from tagwatch.cases.models import Allocation, Device, Order, Person
from tagwatch.crime.matcher import CrimeSet, MatchParams, TrackSet, match_crimes
from tagwatch.crime.service import person_tracks
from tagwatch.crime.track_boxes import (
    CrimePlace,
    boxes_of,
    candidate_allocations,
    refresh_track_boxes,
    window_span,
)
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.db.metadata import load_metadata
from tagwatch.geo.projection import to_bng, to_wgs84
from tagwatch.settings import Settings
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.models import GpsFix
from tagwatch.telemetry.repository import load_fixes

STORED_DAY = 14  # day 15 of the month, counting from 0
AIM_S = 1.0


def month_day(day: TrackSet, d: int, seed: int) -> TrackSet:
    """Day `d` of the month: the base day shifted by d days, with fresh GPS noise."""
    rng = np.random.default_rng(seed + d)
    return TrackSet(
        day.owner,
        day.t_ms + d * DAY_MS,
        day.x + rng.normal(0, 3, len(day)),
        day.y + rng.normal(0, 3, len(day)),
        day.accuracy_m,
    )


def serial(owner: int) -> str:
    return f"GPS-{owner:06d}"


def add_people(session: Session, people: int) -> None:
    fitted = from_ms(START_MS - DAY_MS)
    ids = range(1, people + 1)
    session.execute(
        insert(Person),
        [
            {
                "id": k,
                "ref": f"TW-{k:06d}",
                "date_of_birth": dt.date(1990, 1, k % 28 + 1),
                "sex": "male",
                "gender": "man",
                "ethnicity": "W1",
                "disability": "not_recorded",
                "nationality": "GBR",
                "religion": "not_recorded",
                "language": "en",
            }
            for k in ids
        ],
    )
    session.execute(
        insert(Order),
        [
            {
                "id": k,
                "ref": f"ORD-{k:06d}",
                "person_id": k,
                "type": "community_order",
                "status": "active",
                "notifying_org_kind": "court",
                "notifying_org_name": "Westminster Magistrates' Court",
                "responsible_org_kind": "probation",
                "responsible_org_name": "London Probation",
                "region_code": "LDN",
                "delivery_unit_code": "LDN-CAM",
                "responsible_officer": "officer",
                "start_date": dt.date(2026, 1, 1),
                "end_date": dt.date(2027, 1, 1),
            }
            for k in ids
        ],
    )
    session.execute(
        insert(Device),
        [
            {"id": k, "serial": serial(k), "type": "gps_tag", "model": "T1", "batch": "B1"}
            for k in ids
        ],
    )
    session.execute(
        insert(Allocation),
        [
            {"id": k, "device_id": k, "order_id": k, "person_id": k, "fitted_at": fitted}
            for k in ids
        ],
    )


def store_fixes(session: Session, day: TrackSet) -> tuple[np.ndarray, np.ndarray]:
    """Store one day as gps_fix rows (indexes dropped for the load, then built); the stored
    latitudes and longitudes."""
    lon, lat = to_wgs84(day.x, day.y)
    table = GpsFix.__table__
    for index in table.indexes:
        session.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    names = [serial(k) for k in range(int(day.owner.max()) + 1)]
    serials = [names[k] for k in day.owner.tolist()]
    t = day.t_ms.tolist()
    step = 1_000_000
    columns = (
        "dedupe_key, device_serial, allocation_id, t_ms, received_ms, lat, lon, accuracy_m, source"
    )
    dbapi: Any = session.connection().connection.dbapi_connection
    with _cursor(dbapi) as cursor:
        for lo in range(0, len(day), step):
            hi = min(lo + step, len(day))
            rows = [
                (f"{s}|gps|{ms}", s, int(o), ms, ms, la, lo_, acc, "gnss")
                for s, o, ms, la, lo_, acc in zip(
                    serials[lo:hi],
                    day.owner[lo:hi].tolist(),
                    t[lo:hi],
                    lat[lo:hi].tolist(),
                    lon[lo:hi].tolist(),
                    day.accuracy_m[lo:hi].tolist(),
                    strict=True,
                )
            ]
            cursor.executemany(
                f"INSERT INTO gps_fix ({columns}) VALUES ({', '.join('?' * 9)})", rows
            )
    for index in table.indexes:
        index.create(session.connection())
    return lat, lon


class _cursor:
    def __init__(self, dbapi: Any) -> None:
        self.cursor = dbapi.cursor()

    def __enter__(self) -> Any:
        return self.cursor

    def __exit__(self, *_: Any) -> None:
        self.cursor.close()


def insert_boxes(session: Session, day: TrackSet, next_head: TrackSet | None, d: int) -> int:
    """The boxes of day `d` made in memory (with the next day's first reach, whose fixes also
    widen the day's last hour), inserted directly."""
    parts = [day] if next_head is None else [day, next_head]
    owner = np.concatenate([p.owner for p in parts])
    boxes = boxes_of(
        owner,
        np.concatenate([p.t_ms for p in parts]),
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
    )
    start = START_MS + d * DAY_MS
    mine = (boxes.hour_ms >= start) & (boxes.hour_ms < start + DAY_MS)
    rows = list(
        zip(
            [serial(k) for k in boxes.device[mine].tolist()],
            boxes.hour_ms[mine].tolist(),
            boxes.min_x[mine].tolist(),
            boxes.min_y[mine].tolist(),
            boxes.max_x[mine].tolist(),
            boxes.max_y[mine].tolist(),
            strict=True,
        )
    )
    dbapi: Any = session.connection().connection.dbapi_connection
    with _cursor(dbapi) as cursor:
        cursor.executemany(
            "INSERT INTO track_hour_box (device_serial, hour_ms, min_x, min_y, max_x, max_y)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def head(day: TrackSet, reach_ms: int) -> TrackSet:
    keep = day.t_ms < (day.t_ms.min() // DAY_MS * DAY_MS) + reach_ms
    return TrackSet(*(getattr(day, f)[keep] for f in ("owner", "t_ms", "x", "y", "accuracy_m")))


def one_crime(crimes: CrimeSet, row: int) -> CrimeSet:
    return CrimeSet(
        *(getattr(crimes, f)[row : row + 1] for f in ("crime_id", "x", "y", "t_from", "t_to"))
    )


def query(session: Session, crimes: CrimeSet, row: int, params: MatchParams) -> dict[str, Any]:
    """One crime, through the boxes, as run_matching does it; timed."""
    wall, cpu = time.perf_counter(), time.process_time()
    place = [
        CrimePlace(
            float(crimes.x[row]),
            float(crimes.y[row]),
            int(crimes.t_from[row]),
            int(crimes.t_to[row]),
        )
    ]
    allocations = candidate_allocations(session, place, params)
    boxes_s = time.perf_counter() - wall
    start, end = window_span(place, params)
    fixes = load_fixes(session, start=start, end=end, allocation_ids=allocations)
    people = person_tracks(session, fixes)
    one = CrimeSet(
        *(getattr(crimes, f)[row : row + 1] for f in ("crime_id", "x", "y", "t_from", "t_to"))
    )
    result = match_crimes(one, people.tracks, params)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "boxes_s": boxes_s,
        "allocations": len(allocations),
        "fixes_read": len(fixes),
        "window_h": round((int(crimes.t_to[row]) - int(crimes.t_from[row])) / 3_600_000, 2),
        "matches": {int(o) for o in result.owner},
    }


def main() -> None:
    people = int(os.environ.get("BENCH_SINGLE_PEOPLE", "10000"))
    days = int(os.environ.get("BENCH_SINGLE_DAYS", "30"))
    n_crimes = int(os.environ.get("BENCH_SINGLE_CRIMES", "20"))
    params = MatchParams()
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "people": people,
        "days": days,
        "month": "one synthetic day repeated, shifted by whole days, fresh 3 m GPS noise each",
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'tw.db'}"
        report["backend"] = "sqlite"
        engine = make_engine(url)
        metadata = load_metadata()
        metadata.drop_all(engine)
        metadata.create_all(engine)
        factory = make_sessionmaker(engine, Settings(database_url=url, log_json=True))
        base = synthetic_tracks(people, 1)
        stored = month_day(base, STORED_DAY, seed=7)
        timings: dict[str, float] = {}
        with factory() as session:
            add_people(session, people)
            # The other days' boxes, made in memory; the stored day's come from its fixes.
            began = time.perf_counter()
            for d in range(days):
                if d == STORED_DAY:
                    continue
                today = month_day(base, d, seed=7)
                after = None if d + 1 >= days else head(month_day(base, d + 1, seed=7), 1_800_000)
                insert_boxes(session, today, after, d)
            session.commit()
            timings["other_days_boxes_s"] = round(time.perf_counter() - began, 1)

            began = time.perf_counter()
            lat, lon = store_fixes(session, stored)
            timings["store_day_s"] = round(time.perf_counter() - began, 1)
            session.commit()

            # What ingest (or the periodic task) runs: box the fixes stored since last time.
            began, cpu = time.perf_counter(), time.process_time()
            merged = refresh_track_boxes(session)
            timings["refresh_day_s"] = round(time.perf_counter() - began, 1)
            timings["refresh_day_cpu_s"] = round(time.process_time() - cpu, 1)
            session.commit()
            total_boxes = session.scalar(text("SELECT count(*) FROM track_hour_box"))
            session.execute(text("ANALYZE"))
            session.commit()

        report["store"] = {
            "fixes_stored": len(stored),
            "fixes_boxed_by_refresh": merged,
            "fixes_in_month": len(base) * days,
            "boxes": int(total_boxes or 0),
            **timings,
        }

        # The reference: the matcher over every stored fix of the day, in memory.
        x, y = to_bng(lon, lat)
        everything = TrackSet(stored.owner, stored.t_ms, x, y, stored.accuracy_m)
        day_start = START_MS + STORED_DAY * DAY_MS
        crimes = synthetic_crimes(n_crimes, stored, 1, seed=11, start_ms=day_start)
        inside = (crimes.t_from >= day_start) & (crimes.t_to < day_start + DAY_MS)
        expected = match_crimes(crimes, everything, params)

        runs = []
        with factory() as session:
            for row in range(len(crimes)):
                run = query(session, crimes, row, params)
                want = {
                    int(o)
                    for c, o in zip(expected.crime_index, expected.owner, strict=True)
                    if c == row
                }
                assert run["matches"] == want, f"crime {row}: {run['matches']} != {want}"
                runs.append(run)
            # The old way for one crime: every fix of the window.
            longest = int(np.argmax(crimes.t_to - crimes.t_from))
            began, cpu = time.perf_counter(), time.process_time()
            place = [
                CrimePlace(
                    float(crimes.x[longest]),
                    float(crimes.y[longest]),
                    int(crimes.t_from[longest]),
                    int(crimes.t_to[longest]),
                )
            ]
            start, end = window_span(place, params)
            all_fixes = load_fixes(session, start=start, end=end)
            old_people = person_tracks(session, all_fixes)
            match_crimes(one_crime(crimes, longest), old_people.tracks, params)
            old = {
                "window_h": runs[longest]["window_h"],
                "fixes_read": len(all_fixes),
                "wall_s": round(time.perf_counter() - began, 3),
                "cpu_s": round(time.process_time() - cpu, 3),
            }
        engine.dispose()

    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    report["crimes"] = {
        "count": len(runs),
        "all_in_the_stored_day": bool(np.all(inside)),
        "identical_to_matching_every_fix": True,
        "matches": sum(len(r["matches"]) for r in runs),
        "wall_s_median": round(statistics.median(walls), 3),
        "wall_s_max": round(max(walls), 3),
        "cpu_s_median": round(statistics.median(cpus), 3),
        "cpu_s_max": round(max(cpus), 3),
        "boxes_s_median": round(statistics.median(r["boxes_s"] for r in runs), 3),
        "allocations_median": statistics.median(r["allocations"] for r in runs),
        "fixes_read_median": statistics.median(r["fixes_read"] for r in runs),
        "fixes_read_max": max(r["fixes_read"] for r in runs),
    }
    report["every_fix_of_the_window_for_the_longest_crime"] = old
    report["aim_s"] = AIM_S
    report["ratio_aim_over_max_cpu"] = round(AIM_S / max(cpus), 2)
    report["ratio_old_way_over_median_wall"] = round(old["wall_s"] / statistics.median(walls), 1)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
