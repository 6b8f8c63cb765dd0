"""The PostGIS views on a PostgreSQL database of their own, read as GIS analysts read them."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from analytics_cases import (
    DAY,
    START,
    ZONE_RADIUS_M,
    Cohort,
    build_cohort,
    c_fix_times,
)
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError

from tagwatch.access.pseudonymise import pseudonym
from tagwatch.analytics.gis import GisUnavailable, create_gis_views
from tagwatch.analytics.pseudonyms import device_pseudonym
from tagwatch.analytics.repository import DayWindow
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings

KEY = "gis-test-pseudonym-key"


@dataclass
class GisStore:
    engine: Engine
    settings: Settings
    cohort: Cohort
    role: str

    def rows(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(sql), params)]

    def views(self, **options: object) -> object:
        with unit_of_work(make_sessionmaker(self.engine, self.settings)) as session:
            return create_gis_views(session, role=self.role, **options)  # type: ignore[arg-type]


def _scratch_database(postgres_url: str, prefix: str) -> tuple[Engine, str, Engine]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(False)
    return admin, name, make_engine(url)


def _drop(admin: Engine, name: str, engine: Engine, role: str | None = None) -> None:
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if role:
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


@pytest.fixture(scope="module")
def gis(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GisStore]:
    """A new database holding the cohort's day, with the views made once."""
    admin, name, engine = _scratch_database(postgres_url, "tw_gis")
    role = f"tw_gis_{uuid.uuid4().hex[:8]}"
    try:
        load_metadata().create_all(engine)
        settings = Settings(
            environment="test",
            database_url=engine.url.render_as_string(False),
            var_dir=Path(tmp_path_factory.mktemp("gis-var")),
            pseudonym_key=KEY,
        )
        with unit_of_work(make_sessionmaker(engine, settings)) as session:
            cohort = build_cohort(session, settings)
        store = GisStore(engine, settings, cohort, role)
        store.views()
        yield store
    finally:
        _drop(admin, name, engine, role)


def test_each_view_registers_its_geometry_type_and_srid(gis: GisStore) -> None:
    columns = gis.rows(
        "SELECT f_table_name, type, srid FROM geometry_columns WHERE f_table_schema = 'gis'"
    )
    assert sorted(columns) == [
        ("daily_tracks", "MULTILINESTRINGM", 4326),
        ("fixes", "POINT", 4326),
        ("violations", "POINT", 4326),
        ("zones", "MULTIPOLYGON", 4326),
    ]


def test_every_fix_is_a_point_where_it_was_seen(gis: GisStore) -> None:
    [(stored, points, misplaced)] = gis.rows(
        "SELECT (SELECT count(*) FROM public.gps_fix), count(v.geom),"
        " count(*) FILTER (WHERE ST_X(v.geom) <> f.lon OR ST_Y(v.geom) <> f.lat"
        "   OR v.observed_at <> to_timestamp(f.t_ms / 1000.0) OR v.t_ms <> f.t_ms)"
        " FROM gis.fixes v JOIN public.gps_fix f ON f.id = v.fix_id"
    )
    # The day's 691 fixes and A's one either side of the day.
    assert stored == points == 693 and misplaced == 0


def test_daily_tracks_split_at_gaps_longer_than_the_limit(gis: GisStore) -> None:
    tracks = {
        person: (fixes, parts, lone, parts_in_geometry, points)
        for person, fixes, parts, lone, parts_in_geometry, points in gis.rows(
            "SELECT person, fixes, parts, lone_fixes, ST_NumGeometries(geom), ST_NPoints(geom)"
            " FROM gis.daily_tracks WHERE day = :day",
            day=DAY,
        )
    }
    a, b, c = (pseudonym(gis.cohort.wearers[k].ref, KEY) for k in "ABC")
    assert tracks == {
        a: (288, 1, 0, 1, 288),
        b: (288, 1, 0, 1, 288),  # the impossible fix is left out of the track
        c: (111, 2, 1, 2, 110),  # 00:00-06:00 and 09:00-12:00; the 18:00 fix is alone
        None: (3, 1, 0, 1, 3),  # the spare device, on nobody
    }


def test_a_track_carries_its_times_as_measures(gis: GisStore) -> None:
    c = pseudonym(gis.cohort.wearers["C"].ref, KEY)
    [(first_m, last_m, first_at, max_gap, length)] = gis.rows(
        "SELECT ST_M(ST_StartPoint(ST_GeometryN(geom, 1))),"
        " ST_M(ST_EndPoint(ST_GeometryN(geom, 2))), first_at, max_gap_s, length_m"
        " FROM gis.daily_tracks WHERE day = :day AND person = :person",
        day=DAY,
        person=c,
    )
    times = c_fix_times()
    assert first_m == times[0].timestamp() and last_m == times[-2].timestamp()
    assert first_at == START and max_gap == 600.0
    # C walks one metre a minute east: 6 h and 3 h of walking.
    assert length == pytest.approx(360 + 180, rel=0.01)


def test_a_day_of_lone_fixes_is_a_track_with_no_line(gis: GisStore) -> None:
    a = pseudonym(gis.cohort.wearers["A"].ref, KEY)
    edges = gis.rows(
        "SELECT day, fixes, parts, lone_fixes, geom IS NULL FROM gis.daily_tracks"
        " WHERE person = :person AND day <> :day ORDER BY day",
        person=a,
        day=DAY,
    )
    assert edges == [
        (DAY - dt.timedelta(days=1), 1, 0, 1, True),
        (DAY + dt.timedelta(days=1), 1, 0, 1, True),
    ]


def test_zones_are_multipolygons_with_circles_buffered(gis: GisStore) -> None:
    zones = {
        shape: (kind, geometry_type, parts, area, radius)
        for shape, kind, geometry_type, parts, area, radius in gis.rows(
            "SELECT shape, zone_type, ST_GeometryType(geom), ST_NumGeometries(geom),"
            " ST_Area(ST_Transform(geom, 27700)), radius_m FROM gis.zones"
        )
    }
    assert set(zones) == {"Circle", "Polygon"}
    kind, geometry_type, parts, area, radius = zones["Circle"]
    assert (kind, geometry_type, parts, radius) == (
        "exclusion_zone",
        "ST_MultiPolygon",
        1,
        ZONE_RADIUS_M,
    )
    assert area == pytest.approx(math.pi * ZONE_RADIUS_M**2, rel=0.01)
    kind, geometry_type, parts, area, radius = zones["Polygon"]
    assert (geometry_type, parts, radius) == ("ST_MultiPolygon", 1, None)
    assert area == pytest.approx(500 * 500, rel=0.01)


def test_violations_are_placed_at_their_first_evidence_fix(gis: GisStore) -> None:
    window = DayWindow(DAY)
    [(stored, listed, placed, with_evidence)] = gis.rows(
        "SELECT (SELECT count(*) FROM public.violation), count(*), count(geom),"
        " (SELECT count(*) FROM public.violation WHERE json_array_length(evidence_fixes) > 0)"
        " FROM gis.violations"
    )
    assert stored == listed >= 2 and placed == with_evidence >= 1
    [(rule, inside, evidence_at)] = gis.rows(
        "SELECT v.rule_id, ST_Within(v.geom, z.geom), v.evidence_at FROM gis.violations v"
        " JOIN gis.zones z ON z.person = v.person WHERE v.condition_type = 'exclusion_zone'"
    )
    assert rule == "zone.exclusion.entry" and inside is True
    assert window.start <= evidence_at < window.end
    [(strap_geom,)] = gis.rows("SELECT geom FROM gis.violations WHERE rule_id = 'tamper.strap'")
    assert strap_geom is None  # a tamper has no place


def test_the_views_show_pseudonyms_and_nothing_that_identifies(gis: GisStore) -> None:
    wearers = gis.cohort.wearers.values()
    people = {p for (p,) in gis.rows("SELECT DISTINCT person FROM gis.fixes")}
    devices = {d for (d,) in gis.rows("SELECT DISTINCT device FROM gis.fixes")}
    assert people == {pseudonym(w.ref, KEY) for w in wearers} | {None}
    assert devices == {device_pseudonym(w.serial, KEY) for w in wearers} | {
        device_pseudonym("GPS-ANA-SPARE", KEY)
    }
    everything = " ".join(
        str(row)
        for view in ("fixes", "daily_tracks", "zones", "violations")
        for row in gis.rows(f"SELECT * FROM gis.{view}")
    ).lower()
    for secret in gis.cohort.identifying_strings():
        assert secret.lower() not in everything, secret


def test_the_role_reads_the_views_and_nothing_else(gis: GisStore) -> None:
    with gis.engine.connect() as connection:
        connection.execute(text(f'SET ROLE "{gis.role}"'))
        # The day's four tracks and A's lone fixes either side of it.
        assert connection.execute(text("SELECT count(*) FROM gis.daily_tracks")).scalar() == 6
        touchable = connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')"
                " AND has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE')"
            )
        ).scalars()
        # Only PostGIS's own catalogue, which every user may read; none of tagwatch's tables.
        assert set(touchable) <= {"spatial_ref_sys", "geometry_columns", "geography_columns"}
        tables = {name for (name,) in gis.rows("SELECT tablename FROM pg_tables")}
        assert set(load_metadata().tables) <= tables
        for forbidden in (
            "SELECT count(*) FROM public.person",
            "SELECT count(*) FROM public.gps_fix",
            "SELECT key FROM gis_private.pseudonym_key",
        ):
            with (
                pytest.raises(ProgrammingError, match="permission denied"),
                connection.begin_nested(),
            ):
                connection.execute(text(forbidden))
        writable = connection.execute(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'gis' AND has_table_privilege(current_user, c.oid,"
                " 'INSERT, UPDATE, DELETE, TRUNCATE')"
            )
        ).scalar()
        assert writable == 0
        connection.rollback()


def test_making_the_views_again_is_safe_and_takes_a_new_gap(gis: GisStore) -> None:
    c = pseudonym(gis.cohort.wearers["C"].ref, KEY)
    again = gis.views(max_gap_s=4 * 3600)
    try:
        assert again.role_created is False  # type: ignore[attr-defined]
        # Three hours apart now join; the six hours before 18:00 still do not.
        assert gis.rows(
            "SELECT parts, lone_fixes, max_gap_s FROM gis.daily_tracks"
            " WHERE day = :day AND person = :person",
            day=DAY,
            person=c,
        ) == [(1, 1, 4 * 3600.0)]
    finally:
        gis.views()
    with gis.engine.connect() as connection:
        connection.execute(text(f'SET ROLE "{gis.role}"'))
        assert connection.execute(text("SELECT count(*) FROM gis.zones")).scalar() == 2


def test_making_the_views_is_audited(gis: GisStore) -> None:
    [(detail,)] = gis.rows(
        "SELECT detail FROM public.audit_entry WHERE action = 'analytics.gis_views'"
        " ORDER BY id DESC LIMIT 1"
    )
    assert detail == {
        "views": ["fixes", "daily_tracks", "zones", "violations"],
        "role": gis.role,
        "max_gap_s": 600.0,
    }


def test_without_the_right_to_add_postgis_the_message_says_what_to_do(
    postgres_url: str, tmp_path: Path
) -> None:
    admin, name, engine = _scratch_database(postgres_url, "tw_nogis")
    role = f"tw_nogis_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        settings = Settings(environment="test", var_dir=tmp_path, pseudonym_key=KEY)
        with (
            pytest.raises(GisUnavailable, match="CREATE EXTENSION postgis"),
            unit_of_work(make_sessionmaker(engine, settings)) as session,
        ):
            session.execute(text(f'SET ROLE "{role}"'))
            create_gis_views(session)
    finally:
        _drop(admin, name, engine, role)
