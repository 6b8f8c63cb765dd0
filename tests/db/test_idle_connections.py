"""A pooled PostgreSQL connection lost while idle is replaced, not handed to a request; one
used moments ago is handed out without a round trip."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text

from tagwatch.db import engine as engine_module
from tagwatch.db.engine import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(postgres_url: str, pid: int) -> None:
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_lost_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        lost = _backend_pid(engine)
        _terminate(postgres_url, lost)
        # The pool's only connection is dead; the checkout's ping finds it and reconnects.
        assert _backend_pid(engine) != lost
    finally:
        engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        lost = _backend_pid(engine)
        _terminate(postgres_url, lost)
        # Not idle long enough to be pinged: the dead connection is handed out and the
        # statement fails, which is the price of no round trip per checkout.
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            _backend_pid(engine)
        assert _backend_pid(engine) != lost  # the pool invalidated it and recovers
    finally:
        engine.dispose()
