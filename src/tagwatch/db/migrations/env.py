"""Alembic environment: uses the connection handed in by tagwatch.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from tagwatch.db.metadata import load_metadata

config = context.config
target_metadata = load_metadata()


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as own_connection:
            _configure_and_run(own_connection)
        return
    _configure_and_run(connection)


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
