"""Crime matching: the NumPy matcher against PostGIS on the same fixes. Prints one JSON object.

10,000 crimes (BENCH_CRIME_CRIMES) against one day of fixes for 10,000 people
(BENCH_CRIME_PEOPLE): one fix a minute, about 14 million fixes, from `crime_data.py`. Half the
crimes lie where somebody passed, half anywhere in London; windows of 0 to 12 hours.

The matcher: `index_tracks` (built once for a set of fixes and reused by every batch, as a
database builds its indexes once) and `match_indexed` for the crimes, timed apart: wall clock
and CPU time of this process. The query runs three times; the median is reported.

PostGIS, on the PostgreSQL these machines run (TAGWATCH_BENCH_POSTGRES_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/tw_crime_bench; database and PostGIS created
when missing):

- `bench_fix`: the fixes (owner, t, point in EPSG:27700), binary COPY, with a GiST index on
  the point and a btree on time, as a store of fixes has;
- `bench_seg`: the track elements as a materialised view over `bench_fix`, made in SQL with
  window functions over each owner's fixes in time order: a fix joined to the previous one
  (LAG, at most max_gap before) ends the segment from it; a fix joined to neither neighbour
  (LAG and LEAD) is a lone point. Each element carries its time as Z (milliseconds from the
  day's start). A GiST index on the geometry (2-D) and a btree on the start time;
- the query: for every crime an index scan of the GiST for the elements within the radius
  (ST_DWithin), filtered to those overlapping the window, the element clipped to the window by
  time (ST_LocateBetweenElevations: time runs linearly along a segment), and ST_DWithin on the
  clipped part; an element of zero duration is tested whole at its instant. The plan (EXPLAIN)
  is in the JSON.

BENCH_CRIME_PG_INDEX=xyt indexes (x, y, time) instead, with a GiST n-D index and the `&&&`
operator, so the index also filters by time. At this size it was 16 times slower (58 s of
server CPU against 3.6 s; its index took 3 minutes to build against 37 s), so the 2-D index
is the default: the comparison is with the faster PostGIS.

PostgreSQL runs the query in one server process (no parallel workers, as the matcher is one
process) with JIT off (its compile time is a fixed cost it does not win back here); its CPU
time is read from /proc for that process. On a shared machine the wall clock measures the
neighbours too, so the CPU ratio is the fair one. Index building is reported apart on both
sides. PostGIS finds the match set only; the matcher's query time also covers every detail of
every match (closest approach, radius crossings, passes, labelled fixes, coverage, accuracy).
The two match sets must be identical; a pair found by one side only is allowed solely
when its closest distance lies within 1e-6 m of the radius (floating point decides there),
and such pairs are counted.

BENCH_CRIME_PG_REUSE=1 keeps PostGIS tables already loaded with the same fixes (their load
times are then not reported).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import time
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from crime_data import START_MS, synthetic_crimes, synthetic_tracks, timed
from tagwatch.crime.matcher import (
    ALGORITHM_VERSION,
    CrimeSet,
    MatchParams,
    MatchResult,
    TrackSet,
    index_tracks,
    match_indexed,
    where_was,
)

EDGE_M = 1e-6


# --- PostGIS --------------------------------------------------------------------------------


def connect(url: str) -> psycopg.Connection:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    base, _, dbname = plain.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    conn = psycopg.connect(plain, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return conn


def backend_cpu_s(conn: psycopg.Connection) -> float | None:
    """CPU time used so far by the connection's server process (same machine), if readable."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _binary_copy_rows(tracks: TrackSet) -> np.ndarray:
    """The fixes as PostgreSQL binary COPY rows: owner, t_ms, EWKB point."""
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


def fingerprint(tracks: TrackSet, params: MatchParams, index_kind: str) -> str:
    digest = hashlib.sha256()
    for column in (tracks.owner, tracks.t_ms, tracks.x, tracks.y):
        digest.update(column.tobytes())
    digest.update(f"{params.max_gap_ms}|{index_kind}|{START_MS}".encode())
    return digest.hexdigest()


def _stage(
    conn: psycopg.Connection, timings: dict[str, float], name: str, *statements: str
) -> None:
    wall, cpu = time.perf_counter(), backend_cpu_s(conn)
    for statement in statements:
        conn.execute(statement)
    timings[f"{name}_s"] = round(time.perf_counter() - wall, 2)
    after = backend_cpu_s(conn)
    if cpu is not None and after is not None:
        timings[f"{name}_server_cpu_s"] = round(after - cpu, 2)


def load_postgis(
    conn: psycopg.Connection, tracks: TrackSet, params: MatchParams, index_kind: str
) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn.execute("DROP MATERIALIZED VIEW IF EXISTS bench_seg")
    conn.execute("DROP TABLE IF EXISTS bench_fix, bench_crime, bench_meta")
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
    timings["copy_s"] = round(time.perf_counter() - start, 2)
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET work_mem = '1GB'")
    _stage(
        conn,
        timings,
        "fix_indexes",
        "CREATE INDEX bench_fix_geom ON bench_fix USING gist (geom)",
        "CREATE INDEX bench_fix_t ON bench_fix (t)",
        "ANALYZE bench_fix",
    )
    gap = int(params.max_gap_ms)
    # z: milliseconds from the day's start, so the index's single-precision boxes stay tight.
    _stage(
        conn,
        timings,
        "segments",
        f"""
        CREATE MATERIALIZED VIEW bench_seg AS
        SELECT owner,
               CASE WHEN joined_prev THEN t_prev ELSE t END AS t0,
               t AS t1,
               ST_SetSRID(CASE WHEN joined_prev
                    THEN ST_MakeLine(
                        ST_MakePoint(ST_X(geom_prev), ST_Y(geom_prev), t_prev - {START_MS}),
                        ST_MakePoint(ST_X(geom), ST_Y(geom), t - {START_MS}))
                    ELSE ST_MakePoint(ST_X(geom), ST_Y(geom), t - {START_MS})
               END, 27700)::geometry(GeometryZ, 27700) AS geom
        FROM (
            SELECT owner, t, geom,
                   lag(t) OVER w AS t_prev,
                   lag(geom) OVER w AS geom_prev,
                   coalesce(t - lag(t) OVER w <= {gap}, false) AS joined_prev,
                   coalesce(lead(t) OVER w - t <= {gap}, false) AS joined_next
            FROM bench_fix
            WINDOW w AS (PARTITION BY owner ORDER BY t)
        ) ordered
        WHERE joined_prev OR NOT joined_next
        """,
    )
    index = (
        "CREATE INDEX bench_seg_xyt ON bench_seg USING gist (geom gist_geometry_ops_nd)"
        if index_kind == "xyt"
        else "CREATE INDEX bench_seg_xy ON bench_seg USING gist (geom)"
    )
    _stage(
        conn,
        timings,
        "segment_indexes",
        index,
        "CREATE INDEX bench_seg_t ON bench_seg (t0)",
        "ANALYZE bench_seg",
    )
    return timings


_MATCH_QUERY = {
    # The n-D box: crime +- radius in x and y, the window in z (time).
    "xyt": """
        SELECT DISTINCT c.id, s.owner
        FROM bench_crime c
        JOIN bench_seg s ON s.geom &&& c.reach
        WHERE CASE WHEN s.t1 = s.t0
                   THEN s.t0 - {start} BETWEEN c.w0 AND c.w1 AND ST_DWithin(s.geom, c.geom, {r})
                   ELSE ST_DWithin(ST_LocateBetweenElevations(s.geom, c.w0, c.w1), c.geom, {r})
              END
    """,
    "xy": """
        SELECT DISTINCT c.id, s.owner
        FROM bench_crime c
        JOIN bench_seg s
          ON ST_DWithin(s.geom, c.geom, {r})
         AND s.t0 - {start} <= c.w1 AND s.t1 - {start} >= c.w0
        WHERE CASE WHEN s.t1 = s.t0
                   THEN s.t0 - {start} BETWEEN c.w0 AND c.w1
                   ELSE ST_DWithin(ST_LocateBetweenElevations(s.geom, c.w0, c.w1), c.geom, {r})
              END
    """,
}


def _plan_summary(plan: dict[str, Any]) -> list[str]:
    """The plan's nodes, depth first: node type and the relation or index it reads."""
    node = plan["Node Type"]
    target = plan.get("Index Name") or plan.get("Relation Name")
    lines = [f"{node} {target}" if target else node]
    for child in plan.get("Plans", []):
        lines.extend(_plan_summary(child))
    return lines


def postgis_matches(
    conn: psycopg.Connection, crimes: CrimeSet, params: MatchParams, index_kind: str
) -> tuple[set[tuple[int, int]], float, float | None, list[str]]:
    conn.execute("DROP TABLE IF EXISTS bench_crime")
    conn.execute(
        "CREATE UNLOGGED TABLE bench_crime (id bigint, w0 double precision,"
        " w1 double precision, geom geometry(Point, 27700), reach geometry(LineStringZ, 27700))"
    )
    r = params.radius_m
    with conn.cursor() as cur, cur.copy("COPY bench_crime (id, w0, w1, geom) FROM STDIN") as copy:
        for i, x, y, a, b in zip(
            crimes.crime_id.tolist(),
            crimes.x.tolist(),
            crimes.y.tolist(),
            crimes.t_from.tolist(),
            crimes.t_to.tolist(),
            strict=True,
        ):
            w0 = a - params.tolerance_ms - START_MS
            w1 = b + params.tolerance_ms - START_MS
            copy.write_row((i, w0, w1, f"SRID=27700;POINT({x!r} {y!r})"))
    conn.execute(
        "UPDATE bench_crime SET reach = ST_SetSRID(ST_MakeLine("
        f"ST_MakePoint(ST_X(geom) - {r!r}, ST_Y(geom) - {r!r}, w0),"
        f"ST_MakePoint(ST_X(geom) + {r!r}, ST_Y(geom) + {r!r}, w1)), 27700)"
    )
    conn.execute("ANALYZE bench_crime")
    # One server process, as the matcher is one process: its CPU time is then the query's.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET jit = off")
    query = _MATCH_QUERY[index_kind].format(r=repr(r), start=START_MS)
    explained = conn.execute("EXPLAIN (FORMAT JSON) " + query).fetchone()
    plan = _plan_summary(explained[0][0]["Plan"]) if explained else []
    start = time.perf_counter()
    cpu_before = backend_cpu_s(conn)
    found = conn.execute(query).fetchall()
    wall = time.perf_counter() - start
    cpu_after = backend_cpu_s(conn)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {(int(a), int(b)) for a, b in found}, wall, cpu, plan


def loaded_fingerprint(conn: psycopg.Connection) -> str | None:
    try:
        row = conn.execute("SELECT fingerprint FROM bench_meta").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else str(row[0])


# --- comparison -----------------------------------------------------------------------------


def closest_distance(
    tracks: TrackSet, crimes: CrimeSet, crime_id: int, owner: int, params: MatchParams
) -> float:
    """The matcher's closest distance of one owner's track to one crime (no match needed)."""
    lo, hi = np.searchsorted(tracks.owner, [owner, owner + 1])
    one = TrackSet(*(getattr(tracks, f)[lo:hi] for f in ("owner", "t_ms", "x", "y", "accuracy_m")))
    row = int(np.flatnonzero(crimes.crime_id == crime_id)[0])
    answer = where_was(one, crimes, params, row)
    return float("inf") if answer.closest_distance_m is None else answer.closest_distance_m


def compare(
    ours: MatchResult,
    theirs: set[tuple[int, int]],
    tracks: TrackSet,
    crimes: CrimeSet,
    params: MatchParams,
) -> dict[str, Any]:
    mine = {(int(c), int(o)) for c, o in zip(ours.crime_id, ours.owner, strict=True)}
    only_ours = mine - theirs
    only_theirs = theirs - mine
    at_edge = [
        abs(closest_distance(tracks, crimes, c, o, params) - params.radius_m) <= EDGE_M
        for c, o in sorted(only_ours | only_theirs)
    ]
    assert all(at_edge), (
        f"match sets differ away from the radius: {len(only_ours)} only in the matcher, "
        f"{len(only_theirs)} only in PostGIS"
    )
    return {
        "identical": mine == theirs,
        "only_matcher_at_radius": len(only_ours),
        "only_postgis_at_radius": len(only_theirs),
    }


def median_run(
    crimes: CrimeSet, index: Any, params: MatchParams, runs: int = 3
) -> tuple[MatchResult, float, float]:
    walls, cpus = [], []
    result = None
    for _ in range(runs):
        result, wall, cpu = timed(match_indexed, crimes, index, params)
        walls.append(wall)
        cpus.append(cpu)
    assert result is not None
    return result, statistics.median(walls), statistics.median(cpus)


def main() -> None:
    people = int(os.environ.get("BENCH_CRIME_PEOPLE", "10000"))
    n_crimes = int(os.environ.get("BENCH_CRIME_CRIMES", "10000"))
    index_kind = os.environ.get("BENCH_CRIME_PG_INDEX", "xy")
    reuse = os.environ.get("BENCH_CRIME_PG_REUSE") == "1"
    url = os.environ.get(
        "TAGWATCH_BENCH_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/tw_crime_bench",
    )
    if index_kind not in _MATCH_QUERY:
        raise SystemExit("BENCH_CRIME_PG_INDEX: xy or xyt")
    params = MatchParams()
    report: dict[str, Any] = {
        "algorithm_version": ALGORITHM_VERSION,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }

    tracks, gen_s, _ = timed(synthetic_tracks, people, 1)
    crimes = synthetic_crimes(n_crimes, tracks, 1)
    index, index_wall, index_cpu = timed(index_tracks, tracks, params)
    result, wall, cpu = median_run(crimes, index, params)
    report["matcher"] = {
        "people": people,
        "fixes": len(tracks),
        "crimes": n_crimes,
        "generate_s": round(gen_s, 2),
        "index_build_s": round(index_wall, 3),
        "index_build_cpu_s": round(index_cpu, 3),
        "index_entries": len(index.grid),
        "query_s": round(wall, 3),
        "query_cpu_s": round(cpu, 3),
        "matches": len(result),
        "passes": int(result.passes.sum()),
        "fixes_in_radius": int(result.fixes_in_radius.sum()),
    }

    conn = connect(url)
    try:
        print_ = fingerprint(tracks, params, index_kind)
        load: dict[str, float] = {}
        if not (reuse and loaded_fingerprint(conn) == print_):
            load = load_postgis(conn, tracks, params, index_kind)
            conn.execute("CREATE TABLE bench_meta (fingerprint text)")
            conn.execute("INSERT INTO bench_meta VALUES (%s)", (print_,))
        theirs, pg_wall, pg_cpu, plan = postgis_matches(conn, crimes, params, index_kind)
    finally:
        conn.close()
    report["postgis"] = {
        "index": index_kind,
        "load": load or "reused",
        "plan": plan,
        "query_s": round(pg_wall, 3),
        "query_server_cpu_s": None if pg_cpu is None else round(pg_cpu, 3),
        "matches": len(theirs),
    }
    report["comparison"] = compare(result, theirs, tracks, crimes, params)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    # Query against query: each side's index is built beforehand and reported apart.
    report["ratio_postgis_over_matcher_cpu"] = None if pg_cpu is None else round(pg_cpu / cpu, 1)
    report["ratio_postgis_over_matcher_wall"] = round(pg_wall / wall, 1)
    if load:
        pg_build = sum(v for k, v in load.items() if k.endswith("_s") and "cpu" not in k)
        report["ratio_postgis_over_matcher_wall_with_index_build"] = round(
            (pg_build + pg_wall) / (index_wall + wall), 1
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
