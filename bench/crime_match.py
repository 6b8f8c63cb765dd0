"""Crime matching: the NumPy matcher against PostGIS on the same fixes, and a 30-day query.

1. 10,000 crimes against one day of fixes for 10,000 people (one fix a minute, about 14
   million fixes) in London: the matcher's time, then the same match set from PostGIS
   (fixes COPYed into a table with point geometry in EPSG:27700, a GiST index on it and a
   btree on time; segments of consecutive fixes at most max_gap apart made with ST_MakeLine,
   GiST-indexed, clipped to each window with ST_LineSubstring and tested with ST_DWithin).
   The two match sets must be identical.
2. One crime against 30 days of fixes (BENCH_CRIME_30D_PEOPLE people, 2,500 by default: the
   day above repeated with fresh noise, kept in memory, about 100 million fixes; the matcher
   reads only the fixes in reach of the window).

Prints one JSON object. Environment: TAGWATCH_BENCH_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/tw_crime_bench; the database and PostGIS are
created when missing), BENCH_CRIME_PEOPLE, BENCH_CRIME_CRIMES, BENCH_CRIME_30D_PEOPLE.
"""

from __future__ import annotations

import json
import os
import resource
import time

import numpy as np
import psycopg
from psycopg import sql

from tagwatch.crime.matcher import ALGORITHM_VERSION, CrimeSet, MatchParams, TrackSet, match_crimes

# Greater London on the national grid (metres).
WEST, EAST, SOUTH, NORTH = 505_000.0, 560_000.0, 158_000.0, 200_000.0
DAY_MS = 86_400_000
MINUTE_MS = 60_000
START_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z


def synthetic_tracks(people: int, days: int, seed: int = 1) -> TrackSet:
    """Each person sleeps at home (GPS noise only), visits up to four places a day, walking or
    driving between them in straight lines, one fix a minute, with the odd outage."""
    rng = np.random.default_rng(seed)
    per_day = DAY_MS // MINUTE_MS
    n_fix = people * days * per_day
    owner = np.repeat(np.arange(1, people + 1, dtype=np.int64), days * per_day)
    minute = np.tile(np.arange(days * per_day, dtype=np.int64), people)
    t_ms = START_MS + minute * MINUTE_MS + rng.integers(0, 5_000, n_fix)
    x = np.empty(n_fix)
    y = np.empty(n_fix)
    home_x = rng.uniform(WEST, EAST, people)
    home_y = rng.uniform(SOUTH, NORTH, people)
    m = np.arange(per_day, dtype=np.float64)
    for p in range(people):
        for d in range(days):
            stops = int(rng.integers(1, 5))
            px = np.clip(home_x[p] + rng.normal(0, 4000, stops), WEST, EAST)
            py = np.clip(home_y[p] + rng.normal(0, 4000, stops), SOUTH, NORTH)
            ax = np.concatenate([[home_x[p]], np.repeat(px, 2), [home_x[p]]])
            ay = np.concatenate([[home_y[p]], np.repeat(py, 2), [home_y[p]]])
            times = np.sort(rng.uniform(7 * 60, 23 * 60, 2 * stops + 2))
            seg = slice((p * days + d) * per_day, (p * days + d + 1) * per_day)
            x[seg] = np.interp(m, times, ax)
            y[seg] = np.interp(m, times, ay)
    accuracy = rng.choice([4.0, 8.0, 15.0, 30.0, 60.0], n_fix, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    x += rng.normal(0, 1, n_fix) * accuracy / 2
    y += rng.normal(0, 1, n_fix) * accuracy / 2
    # Outages: runs of about ten lost fixes.
    lost = rng.random(n_fix) < 0.003
    lost = np.convolve(lost.astype(np.int8), np.ones(10, dtype=np.int8), mode="same") > 0
    keep = ~lost
    return TrackSet(owner[keep], t_ms[keep], x[keep], y[keep], accuracy[keep])


def repeat_days(day: TrackSet, people: int, days: int, seed: int = 3) -> TrackSet:
    """The first `people` of a one-day cohort over `days` days: each day repeats the person's
    day, shifted in time and moved by fresh GPS noise (cheap to make at tens of millions)."""
    rng = np.random.default_rng(seed)
    rows = int(np.searchsorted(day.owner, people, side="right"))
    owners, starts, lens = np.unique(day.owner[:rows], return_index=True, return_counts=True)
    block = lens * days
    total = int(block.sum())
    p = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(block) - block, block)
    per = np.repeat(lens, block)
    src = np.repeat(starts, block) + p % per
    shift = (p // per) * DAY_MS
    return TrackSet(
        np.repeat(owners, block),
        day.t_ms[src] + shift,
        day.x[src] + rng.normal(0, 3, total),
        day.y[src] + rng.normal(0, 3, total),
        day.accuracy_m[src],
    )


def synthetic_crimes(count: int, tracks: TrackSet, days: int, seed: int = 2) -> CrimeSet:
    """Half the crimes where somebody passed, half anywhere; windows of 0 to 12 hours."""
    rng = np.random.default_rng(seed)
    on_track = (count + 1) // 2
    pick = rng.integers(0, len(tracks), on_track)
    rest = count - on_track
    x = np.concatenate(
        [tracks.x[pick] + rng.normal(0, 80, on_track), rng.uniform(WEST, EAST, rest)]
    )
    y = np.concatenate(
        [tracks.y[pick] + rng.normal(0, 80, on_track), rng.uniform(SOUTH, NORTH, rest)]
    )
    centre = np.concatenate(
        [tracks.t_ms[pick], rng.integers(START_MS, START_MS + days * DAY_MS, rest)]
    )
    length = rng.choice([0, 15, 60, 180, 480, 720], count) * MINUTE_MS
    t_from = (centre - rng.integers(0, length + 1)).astype(np.int64)
    return CrimeSet(
        np.arange(1, count + 1, dtype=np.int64), x, y, t_from, (t_from + length).astype(np.int64)
    )


def timed(fn, *args):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


# --- PostGIS --------------------------------------------------------------------------------


def _connect(url: str) -> psycopg.Connection:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    base, _, dbname = plain.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    conn = psycopg.connect(plain, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return conn


def _binary_copy_rows(tracks: TrackSet) -> np.ndarray:
    """The fixes as PostgreSQL binary COPY rows: owner, t_ms, accuracy, EWKB point."""
    dtype = np.dtype(
        [
            ("n", ">i2"),
            ("l_owner", ">i4"),
            ("owner", ">i8"),
            ("l_t", ">i4"),
            ("t", ">i8"),
            ("l_geom", ">i4"),
            ("order", "u1"),
            ("kind", "<u4"),
            ("srid", "<u4"),
            ("x", "<f8"),
            ("y", "<f8"),
        ]
    )
    rows = np.empty(len(tracks), dtype=dtype)
    rows["n"] = 3
    rows["l_owner"] = 8
    rows["owner"] = tracks.owner
    rows["l_t"] = 8
    rows["t"] = tracks.t_ms
    rows["l_geom"] = 25
    rows["order"] = 1  # little-endian EWKB
    rows["kind"] = 0x20000001  # point with SRID
    rows["srid"] = 27700
    rows["x"] = tracks.x
    rows["y"] = tracks.y
    return rows


def load_postgis(conn: psycopg.Connection, tracks: TrackSet, params: MatchParams) -> dict:
    timings: dict[str, float] = {}
    conn.execute("DROP TABLE IF EXISTS bench_fix, bench_seg, bench_crime")
    conn.execute(
        "CREATE UNLOGGED TABLE bench_fix (owner bigint, t bigint, geom geometry(Point, 27700))"
    )
    start = time.perf_counter()
    rows = _binary_copy_rows(tracks)
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    with conn.cursor() as cur, cur.copy("COPY bench_fix FROM STDIN WITH (FORMAT binary)") as copy:
        copy.write(header)
        step = 1_000_000
        for lo in range(0, len(rows), step):
            copy.write(rows[lo : lo + step].tobytes())
        copy.write(b"\xff\xff")
    timings["copy_s"] = time.perf_counter() - start

    start = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("CREATE INDEX bench_fix_geom ON bench_fix USING gist (geom)")
    conn.execute("CREATE INDEX bench_fix_t ON bench_fix (t)")
    timings["fix_indexes_s"] = time.perf_counter() - start

    # Segments: consecutive fixes of one owner at most max_gap apart; a fix joined to neither
    # neighbour is a track of one point (a line of zero length).
    start = time.perf_counter()
    gap = int(params.max_gap_ms)
    conn.execute("SET work_mem = '1GB'")
    conn.execute(
        f"""
        CREATE UNLOGGED TABLE bench_seg AS
        SELECT owner, t0, CASE WHEN joined THEN t_next ELSE t0 END AS t1,
               ST_MakeLine(geom, CASE WHEN joined THEN geom_next ELSE geom END) AS geom
        FROM (
            SELECT owner, t AS t0, geom, lead(t) OVER w AS t_next, lead(geom) OVER w AS geom_next,
                   coalesce(lead(t) OVER w - t <= {gap}, false) AS joined,
                   coalesce(t - lag(t) OVER w <= {gap}, false) AS joined_prev
            FROM bench_fix WINDOW w AS (PARTITION BY owner ORDER BY t)
        ) ordered
        WHERE joined OR NOT joined_prev
        """
    )
    conn.execute("CREATE INDEX bench_seg_geom ON bench_seg USING gist (geom)")
    conn.execute("CREATE INDEX bench_seg_t ON bench_seg (t0)")
    conn.execute("ANALYZE bench_seg")
    timings["segments_s"] = time.perf_counter() - start
    return timings


def backend_cpu_s(conn: psycopg.Connection) -> float | None:
    """CPU time used so far by the connection's server process (same machine), if readable."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgis_matches(
    conn: psycopg.Connection, crimes: CrimeSet, params: MatchParams
) -> tuple[set[tuple[int, int]], float, float | None]:
    conn.execute(
        "CREATE UNLOGGED TABLE IF NOT EXISTS bench_crime"
        " (id bigint, w0 double precision, w1 double precision, geom geometry(Point, 27700))"
    )
    conn.execute("TRUNCATE bench_crime")
    with conn.cursor() as cur, cur.copy("COPY bench_crime (id, w0, w1, geom) FROM STDIN") as copy:
        for i, x, y, a, b in zip(
            crimes.crime_id.tolist(),
            crimes.x.tolist(),
            crimes.y.tolist(),
            crimes.t_from.tolist(),
            crimes.t_to.tolist(),
            strict=True,
        ):
            copy.write_row(
                (
                    i,
                    a - params.tolerance_ms,
                    b + params.tolerance_ms,
                    f"SRID=27700;POINT({x!r} {y!r})",
                )
            )
    conn.execute("ANALYZE bench_crime")
    # One server process, as the matcher is one process: its CPU time is then the query's.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    start = time.perf_counter()
    cpu_before = backend_cpu_s(conn)
    found = conn.execute(
        """
        SELECT DISTINCT c.id, s.owner
        FROM bench_crime c
        JOIN bench_seg s
          ON ST_DWithin(s.geom, c.geom, %(r)s)
         AND s.t0 <= c.w1 AND s.t1 >= c.w0
        WHERE ST_DWithin(
            CASE WHEN s.t1 > s.t0 THEN ST_LineSubstring(
                     s.geom,
                     greatest(0.0, (c.w0 - s.t0) / (s.t1 - s.t0)),
                     least(1.0, (c.w1 - s.t0) / (s.t1 - s.t0)))
                 ELSE s.geom END,
            c.geom, %(r)s)
        """,
        {"r": params.radius_m},
    ).fetchall()
    wall = time.perf_counter() - start
    cpu_after = backend_cpu_s(conn)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {(int(a), int(b)) for a, b in found}, wall, cpu


def main() -> None:
    people = int(os.environ.get("BENCH_CRIME_PEOPLE", "10000"))
    n_crimes = int(os.environ.get("BENCH_CRIME_CRIMES", "10000"))
    people_30d = int(os.environ.get("BENCH_CRIME_30D_PEOPLE", "2500"))
    url = os.environ.get(
        "TAGWATCH_BENCH_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/tw_crime_bench",
    )
    params = MatchParams()
    report: dict[str, object] = {"algorithm_version": ALGORITHM_VERSION, "cpus": os.cpu_count()}

    tracks, gen_s, _ = timed(synthetic_tracks, people, 1)
    crimes = synthetic_crimes(n_crimes, tracks, 1)
    result, wall, cpu = timed(match_crimes, crimes, tracks, params)
    ours = {(int(c), int(o)) for c, o in zip(result.crime_id, result.owner, strict=True)}
    report["day"] = {
        "people": people,
        "fixes": len(tracks),
        "crimes": n_crimes,
        "generate_s": round(gen_s, 2),
        "matcher_s": round(wall, 3),
        "matcher_cpu_s": round(cpu, 3),
        "matches": len(result),
        "passes": int(result.passes.sum()),
        "fixes_in_radius": int(result.fixes_in_radius.sum()),
    }

    conn = _connect(url)
    try:
        load = load_postgis(conn, tracks, params)
        theirs, pg_s, pg_cpu = postgis_matches(conn, crimes, params)
    finally:
        conn.close()
    only_ours = ours - theirs
    only_theirs = theirs - ours
    # A pair found by one side only is acceptable solely at the radius itself (rounding).
    near_edge = {
        (int(result.crime_id[k]), int(result.owner[k]))
        for k in range(len(result))
        if abs(result.closest_distance_m[k] - params.radius_m) < 1e-6
    }
    assert only_ours <= near_edge and not only_theirs, (
        f"match sets differ: {len(only_ours)} only in the matcher, "
        f"{len(only_theirs)} only in PostGIS"
    )
    report["postgis"] = {
        **{k: round(v, 2) for k, v in load.items()},
        "query_s": round(pg_s, 3),
        "query_server_cpu_s": None if pg_cpu is None else round(pg_cpu, 3),
        "matches": len(theirs),
        "identical": ours == theirs,
    }
    tracks30, gen30, _ = timed(repeat_days, tracks, people_30d, 30)
    del tracks, result
    one = synthetic_crimes(1, tracks30, 30, 4)
    single, wall30, cpu30 = timed(match_crimes, one, tracks30, params)
    report["single_crime_30_days"] = {
        "people": people_30d,
        "fixes": len(tracks30),
        "generate_s": round(gen30, 1),
        "matcher_s": round(wall30, 3),
        "matcher_cpu_s": round(cpu30, 3),
        "matches": len(single),
    }
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    # Wall clock on a shared machine measures the neighbours too; CPU time is the fair figure.
    report["ratio_postgis_over_matcher_wall"] = round(pg_s / wall, 2)
    # PostGIS needs its tables and indexes first; the matcher's index is inside its time.
    report["ratio_postgis_end_to_end_over_matcher_wall"] = round(
        (sum(load.values()) + pg_s) / wall, 1
    )
    report["ratio_postgis_over_matcher_cpu"] = None if pg_cpu is None else round(pg_cpu / cpu, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
