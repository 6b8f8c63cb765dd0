"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.db.migrate import upgrade


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return list(compare_metadata(context, load_metadata()))


def _audit_log_refuses_changes(engine: Engine) -> None:
    """The migration, not only create_all, makes the audit log append-only."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_entry (at, username, role, action, subject_type, detail,"
                " prev_hash, hash) VALUES (CURRENT_TIMESTAMP, 'u', 'r', 'a', 's', '{}', '', 'h')"
            )
        )
    for statement in ("UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    assert _drift(engine) == []
    upgrade(engine)  # a second upgrade is a no-op, not an error
    _audit_log_refuses_changes(engine)
    engine.dispose()


@pytest.fixture
def scratch_postgres(postgres_url: str) -> Iterator[Engine]:
    """A brand-new PostgreSQL database, dropped afterwards."""
    name = f"tw_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(postgres_url).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgresql_migrations_match_models(scratch_postgres: Engine) -> None:
    upgrade(scratch_postgres)
    assert _drift(scratch_postgres) == []
    _audit_log_refuses_changes(scratch_postgres)


def _alerts_before_delays_are_filled(engine: Engine) -> None:
    """Alerts stored under the first revision get their delays when the second adds them."""
    upgrade(engine, "30efe074f1ed")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO alert (kind, subject_key, violation_type, severity, summary,"
                " needs_tamper_review, status, event_at, received_at, evaluated_at, raised_at,"
                " acknowledged_at, escalated_to, outcome_due_at, updated_at) VALUES"
                " ('violation', 'v:1', 'curfew_absence', 'high', 's', false, 'acknowledged',"
                " :event, :event, :event, :raised, :acked, '[]', :acked, :acked)"
            ),
            {
                "event": dt.datetime(2026, 11, 1, 22, 0, tzinfo=dt.UTC),
                "raised": dt.datetime(2026, 11, 1, 22, 0, 1, 500, tzinfo=dt.UTC),
                "acked": dt.datetime(2026, 11, 1, 22, 30, tzinfo=dt.UTC),
            },
        )
    upgrade(engine)
    with engine.connect() as connection:
        delays = connection.execute(
            text(
                "SELECT event_to_raised_us, event_to_acknowledged_us, event_to_outcome_us"
                " FROM alert"
            )
        ).one()
    assert tuple(delays) == (1_000_500, 1_800_000_000, None)


def test_sqlite_upgrade_fills_the_delays_of_stored_alerts(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _alerts_before_delays_are_filled(engine)
    engine.dispose()


def test_postgresql_upgrade_fills_the_delays_of_stored_alerts(scratch_postgres: Engine) -> None:
    _alerts_before_delays_are_filled(scratch_postgres)
