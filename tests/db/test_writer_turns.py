"""SQLite writers queue for their turn on an OS lock, rather than polling SQLite's lock.

SQLite's own lock answers a writer that finds it taken with "database is locked" once the
busy timeout runs out, polling with sleeps until then. Writers through `make_engine` first
take a file lock beside the database, so the next one waits, without polling, for the one
before it to end, and its turn ends however the transaction does.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from tagwatch.db.engine import make_engine

pytestmark = pytest.mark.backend_independent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE entry (n INTEGER)")
    yield engine
    engine.dispose()


def _impatient(engine: Engine) -> Connection:
    """A connection that SQLite itself would refuse at once if the write lock were taken."""
    connection = engine.connect()
    connection.connection.driver_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
    return connection


def _write_in_thread(connection: Connection, n: int) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def write() -> None:
        try:
            with connection.begin():
                connection.execute(text("INSERT INTO entry VALUES (:n)"), {"n": n})
            outcome.append("written")
        except Exception as error:  # recorded for the assertion
            outcome.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    return thread, outcome


def _next_writer_gets_through(engine: Engine) -> bool:
    connection = _impatient(engine)
    thread, outcome = _write_in_thread(connection, 2)
    thread.join(timeout=10)
    connection.close()
    return outcome == ["written"]


def test_a_writer_waits_for_the_one_before_it_instead_of_failing(store: Engine) -> None:
    first = store.connect()
    first.begin()
    first.execute(text("INSERT INTO entry VALUES (1)"))
    second = _impatient(store)
    thread, outcome = _write_in_thread(second, 2)
    thread.join(timeout=0.5)
    assert thread.is_alive() and outcome == []  # waiting its turn, not refused
    first.commit()
    thread.join(timeout=10)
    assert outcome == ["written"]
    with store.connect() as reader:
        assert sorted(reader.scalars(text("SELECT n FROM entry"))) == [1, 2]
    first.close()
    second.close()


def test_without_the_queue_sqlite_refuses_the_second_writer(store: Engine, tmp_path: Path) -> None:
    # What the queue saves the writer from: the same store, a plain connection.
    first = store.connect()
    first.begin()
    first.execute(text("INSERT INTO entry VALUES (1)"))
    plain = sqlite3.connect(tmp_path / "turns.db", timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        plain.execute("BEGIN IMMEDIATE")
    plain.close()
    first.rollback()
    first.close()


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_the_turn_ends_however_the_transaction_does(store: Engine, ending: str) -> None:
    first = store.connect()
    first.begin()
    first.execute(text("INSERT INTO entry VALUES (1)"))
    getattr(first, ending)()
    assert _next_writer_gets_through(store)
    first.close()


def test_a_failed_statement_rolled_back_ends_the_turn(store: Engine) -> None:
    first = store.connect()
    with pytest.raises(Exception, match="no such table"), first.begin():
        first.execute(text("INSERT INTO missing VALUES (1)"))
    assert _next_writer_gets_through(store)
    first.close()
