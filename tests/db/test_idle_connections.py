"""A pooled PostgreSQL connection lost while idle is replaced, not handed to a request; one
used moments ago is handed out without a round trip."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, text

from tagwatch.db import engine as engine_module
from tagwatch.db.engine import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@contextmanager
def _pool_holding_a_dead_connection(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, ping_after_idle_s: float
) -> Iterator[tuple[Engine, int]]:
    """A one-connection pool whose connection the server has just ended, and its old pid."""
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", ping_after_idle_s)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        lost = _backend_pid(engine)
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})
        yield engine, lost
    finally:
        admin.dispose()
        engine.dispose()


def test_a_connection_lost_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _pool_holding_a_dead_connection(postgres_url, monkeypatch, 0.0) as (engine, lost):
        # Idle past the threshold: the checkout's ping finds it dead and reconnects.
        assert _backend_pid(engine) != lost


def test_a_connection_used_moments_ago_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _pool_holding_a_dead_connection(postgres_url, monkeypatch, 3600.0) as (engine, lost):
        # Not idle long enough to be pinged: the dead connection is handed out and the
        # statement fails, which is the price of no round trip per checkout.
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            _backend_pid(engine)
        assert _backend_pid(engine) != lost  # the pool invalidated it and recovers
