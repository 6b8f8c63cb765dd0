"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

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
