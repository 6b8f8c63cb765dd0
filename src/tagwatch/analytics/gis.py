"""PostGIS views for GIS analysts: schema `gis`, pseudonymised, read by a read-only role.

The views read the live tables (nothing is copied), so they are always current. They run with
their owner's rights, which is how the role reads them without any right on the tables behind
them. People and devices appear as the same pseudonyms as in the Parquet export: PostgreSQL
computes them with pgcrypto's HMAC under the pseudonym key, which is kept in the schema
`gis_private` that only the owner can read (the key is never in a view's definition, which any
user may read). Everything is created in the caller's transaction: all of it or none.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.principal import Principal
from tagwatch.access.pseudonymise import PSEUDONYM_PREFIX
from tagwatch.analytics.pseudonyms import DEVICE_NAMESPACE, DEVICE_PREFIX, sql_pseudonym
from tagwatch.settings import settings_of

SCHEMA = "gis"
PRIVATE_SCHEMA = "gis_private"
DEFAULT_ROLE = "tagwatch_gis"
# Tracks break where fixes are further apart than this: crime matching's default join limit.
DEFAULT_MAX_GAP_S = 600.0
VIEWS = ("fixes", "daily_tracks", "zones", "violations")
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class GisUnavailable(Exception):
    """The store cannot hold the GIS views; the message says what is missing."""


@dataclass(frozen=True)
class GisViews:
    schema: str
    views: tuple[str, ...]
    role: str
    max_gap_s: float
    role_created: bool


def create_gis_views(
    session: Session,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    role: str = DEFAULT_ROLE,
    principal: Principal | None = None,
) -> GisViews:
    """Create or replace the schema, its views and the read-only role (safe to run again)."""
    if session.get_bind().dialect.name != "postgresql":
        raise GisUnavailable(
            "the GIS views need PostgreSQL with PostGIS; this store is "
            f"{session.get_bind().dialect.name}. Set TAGWATCH_DATABASE_URL to a PostgreSQL "
            "database where the postgis extension is available."
        )
    if not (math.isfinite(max_gap_s) and max_gap_s >= 0):
        raise ValueError("max_gap_s: must be a finite number of seconds, 0 or more")
    if not _ROLE_NAME.fullmatch(role):
        raise ValueError("role: must be a lower-case PostgreSQL name (letters, digits, _)")
    app_schema = session.execute(text("SELECT current_schema()")).scalar_one()
    extension_schemas = [_extension(session, name) for name in ("postgis", "pgcrypto")]
    path = ", ".join(_quote(s) for s in dict.fromkeys([app_schema, *extension_schemas]))
    session.execute(text(f"SET LOCAL search_path TO {path}"))
    _store_key(session, settings_of(session).pseudonym_key)
    session.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    statements = view_statements(_quote(app_schema), max_gap_s)
    for name in VIEWS:
        session.execute(text(f"DROP VIEW IF EXISTS {SCHEMA}.{name}"))
        session.execute(text(statements[name]))
    created = _grant_read_only(session, role, _quote(app_schema))
    record(
        session,
        principal,
        "analytics.gis_views",
        subject_type="gis_schema",
        subject_id=SCHEMA,
        purpose="pseudonymised views for GIS analysts",
        detail={"views": list(VIEWS), "role": role, "max_gap_s": max_gap_s},
    )
    return GisViews(SCHEMA, VIEWS, role, max_gap_s, created)


def _extension(session: Session, name: str) -> str:
    """The schema holding the extension, creating the extension when it is missing."""
    found = _extension_schema(session, name)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.execute(text(f"CREATE EXTENSION IF NOT EXISTS {name}"))
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise GisUnavailable(
            f"the GIS views need the PostgreSQL extension {name!r}, which is not installed in "
            f"this database and could not be created ({reason}). Ask a database "
            f"administrator to run: CREATE EXTENSION {name};"
        ) from None
    created = _extension_schema(session, name)
    assert created is not None
    return created


def _extension_schema(session: Session, name: str) -> str | None:
    found: str | None = session.execute(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = :name"
        ),
        {"name": name},
    ).scalar_one_or_none()
    return found


def _store_key(session: Session, key: str) -> None:
    if not key:
        raise ValueError("pseudonym_key: must be set to pseudonymise")
    session.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PRIVATE_SCHEMA}"))
    session.execute(text(f"REVOKE ALL ON SCHEMA {PRIVATE_SCHEMA} FROM PUBLIC"))
    session.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {PRIVATE_SCHEMA}.pseudonym_key ("
            " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
            " key text NOT NULL)"
        )
    )
    session.execute(text(f"REVOKE ALL ON {PRIVATE_SCHEMA}.pseudonym_key FROM PUBLIC"))
    session.execute(
        text(
            f"INSERT INTO {PRIVATE_SCHEMA}.pseudonym_key (singleton, key) VALUES (true, :key)"
            " ON CONFLICT (singleton) DO UPDATE SET key = EXCLUDED.key"
        ),
        {"key": key},
    )


def _grant_read_only(session: Session, role: str, app_schema: str) -> bool:
    """The role may read the views and nothing else; True when it was created now."""
    exists = session.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    quoted = _quote(role)
    try:
        with session.begin_nested():
            if exists is None:
                session.execute(text(f"CREATE ROLE {quoted} NOLOGIN"))
            session.execute(text(f"ALTER ROLE {quoted} SET default_transaction_read_only = on"))
            session.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {app_schema} FROM {quoted}"))
            session.execute(text(f"REVOKE ALL ON SCHEMA {PRIVATE_SCHEMA} FROM {quoted}"))
            session.execute(text(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {quoted}"))
            session.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {quoted}"))
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise GisUnavailable(
            f"could not set up the read-only role {role!r} ({reason}); the database user needs "
            "the CREATEROLE privilege, or an administrator can create the role first."
        ) from None
    return exists is None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_statements(app: str, max_gap_s: float) -> dict[str, str]:
    """CREATE VIEW statements over the tables in schema `app` (already quoted)."""
    key = f"{PRIVATE_SCHEMA}.pseudonym_key"
    person = sql_pseudonym(PSEUDONYM_PREFIX, "p.ref", "k.key")

    def device_of(column: str) -> str:
        return sql_pseudonym(DEVICE_PREFIX, f"'{DEVICE_NAMESPACE}' || {column}", "k.key")

    gap_ms = repr(float(max_gap_s) * 1000.0)
    return {
        "fixes": f"""
CREATE VIEW {SCHEMA}.fixes AS
SELECT f.id AS fix_id,
       {person} AS person,
       {device_of("f.device_serial")} AS device,
       to_timestamp(f.t_ms / 1000.0) AS observed_at,
       f.t_ms,
       to_timestamp(f.received_ms / 1000.0) AS received_at,
       f.accuracy_m,
       f.source,
       f.implausible_reason,
       ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326)::geometry(Point, 4326) AS geom
FROM {app}.gps_fix f
LEFT JOIN {app}.allocation a ON a.id = f.allocation_id
LEFT JOIN {app}.person p ON p.id = a.person_id
CROSS JOIN {key} k""",
        "daily_tracks": f"""
CREATE VIEW {SCHEMA}.daily_tracks AS
WITH located AS (
    SELECT f.id, f.device_serial, f.allocation_id, f.t_ms, f.lat, f.lon,
           (to_timestamp(f.t_ms / 1000.0) AT TIME ZONE 'UTC')::date AS day
    FROM {app}.gps_fix f
    WHERE f.implausible_reason IS NULL
), stepped AS (
    SELECT l.*,
           CASE WHEN l.t_ms - lag(l.t_ms) OVER w <= {gap_ms} THEN 0 ELSE 1 END AS starts_part
    FROM located l
    WINDOW w AS (PARTITION BY l.device_serial, l.allocation_id, l.day ORDER BY l.t_ms, l.id)
), numbered AS (
    SELECT s.*,
           sum(s.starts_part) OVER (
               PARTITION BY s.device_serial, s.allocation_id, s.day ORDER BY s.t_ms, s.id
           ) AS part
    FROM stepped s
), parts AS (
    SELECT device_serial, allocation_id, day, part,
           count(*) AS fixes, min(t_ms) AS first_ms, max(t_ms) AS last_ms,
           ST_MakeLine(ST_MakePointM(lon, lat, t_ms / 1000.0) ORDER BY t_ms, id) AS line
    FROM numbered
    GROUP BY device_serial, allocation_id, day, part
)
SELECT {device_of("t.device_serial")} AS device,
       {person} AS person,
       t.day,
       to_timestamp(min(t.first_ms) / 1000.0) AS first_at,
       to_timestamp(max(t.last_ms) / 1000.0) AS last_at,
       sum(t.fixes)::integer AS fixes,
       (count(*) FILTER (WHERE t.fixes > 1))::integer AS parts,
       (count(*) FILTER (WHERE t.fixes = 1))::integer AS lone_fixes,
       {float(max_gap_s)!r}::double precision AS max_gap_s,
       ST_Length(ST_Force2D(ST_Collect(t.line) FILTER (WHERE t.fixes > 1))::geography)
           AS length_m,
       ST_Multi(ST_Collect(t.line) FILTER (WHERE t.fixes > 1))
           ::geometry(MultiLineStringM, 4326) AS geom
FROM parts t
LEFT JOIN {app}.allocation a ON a.id = t.allocation_id
LEFT JOIN {app}.person p ON p.id = a.person_id
CROSS JOIN {key} k
GROUP BY t.device_serial, t.allocation_id, t.day, p.ref, k.key""",
        "zones": f"""
CREATE VIEW {SCHEMA}.zones AS
SELECT c.id AS condition_id,
       {person} AS person,
       c.type AS zone_type,
       o.status AS order_status,
       c.start,
       c."end",
       coalesce(json_typeof(c.schedule), 'null') <> 'null' AS scheduled,
       c.geometry ->> 'type' AS shape,
       CASE WHEN c.geometry ->> 'type' = 'Circle'
            THEN (c.geometry ->> 'radius_m')::double precision END AS radius_m,
       ST_Multi(
           CASE WHEN c.geometry ->> 'type' = 'Circle' THEN
               ST_Transform(
                   ST_Buffer(
                       ST_Transform(
                           ST_SetSRID(ST_MakePoint(
                               (c.geometry -> 'coordinates' ->> 0)::double precision,
                               (c.geometry -> 'coordinates' ->> 1)::double precision), 4326),
                           27700),
                       (c.geometry ->> 'radius_m')::double precision,
                       32),
                   4326)
           ELSE ST_SetSRID(ST_GeomFromGeoJSON(c.geometry::text), 4326) END
       )::geometry(MultiPolygon, 4326) AS geom
FROM {app}.order_condition c
JOIN {app}.monitoring_order o ON o.id = c.order_id
JOIN {app}.person p ON p.id = o.person_id
CROSS JOIN {key} k
WHERE c.type IN ('exclusion_zone', 'inclusion_zone')
  AND json_typeof(c.geometry) = 'object'""",
        "violations": f"""
CREATE VIEW {SCHEMA}.violations AS
SELECT v.id AS violation_id,
       {person} AS person,
       {device_of("d.serial")} AS device,
       v.rule_id,
       v.rule_version,
       v.rule_set_version,
       c.type AS condition_type,
       v.start,
       v."end",
       v.severity,
       v.status,
       v.needs_review,
       v.withdrawn_at,
       json_array_length(v.evidence_fixes) AS evidence_fixes,
       json_array_length(v.evidence_events) AS evidence_events,
       e.id AS evidence_fix_id,
       to_timestamp(e.t_ms / 1000.0) AS evidence_at,
       e.accuracy_m AS evidence_accuracy_m,
       (CASE WHEN e.id IS NOT NULL THEN ST_SetSRID(ST_MakePoint(e.lon, e.lat), 4326) END)
           ::geometry(Point, 4326) AS geom
FROM {app}.violation v
LEFT JOIN {app}.person p ON p.id = v.person_id
LEFT JOIN {app}.allocation a ON a.id = v.allocation_id
LEFT JOIN {app}.device d ON d.id = a.device_id
LEFT JOIN {app}.order_condition c ON c.id = v.condition_key
LEFT JOIN LATERAL (
    SELECT f.id, f.t_ms, f.lat, f.lon, f.accuracy_m
    FROM json_array_elements_text(v.evidence_fixes) AS evidence(fix_id)
    JOIN {app}.gps_fix f ON f.id = evidence.fix_id::bigint
    ORDER BY f.t_ms, f.id
    LIMIT 1
) e ON true
CROSS JOIN {key} k""",
    }
