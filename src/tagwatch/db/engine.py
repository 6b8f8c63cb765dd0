"""Engines and sessions. One transaction per request, task or CLI command."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

# `session.info` key marking a session that only reads (see `read_only`).
READ_ONLY = "read_only"
# Set while a read-only session opens its transaction, so SQLite begins it DEFERRED.
_beginning_read_only: ContextVar[bool] = ContextVar("beginning_read_only", default=False)
# Set around work whose commit must survive a power cut, not only a crash of the process.
# Execution option marking a connection whose transactions sync SQLite's log at commit. An
# option on the connection, not a context variable: a request's dependency and its route run
# in different thread-pool contexts.
DURABLE = "tagwatch_durable"


class ReadOnlySessionError(RuntimeError):
    """A read-only session was asked to change data."""


# Connections each process keeps open. A busy server runs many requests at once, each holding
# one connection at a time, and connections past the pool are closed again when returned: a
# pool of the default 5 would open and close connections all through a burst. A SQLite
# connection costs little; PostgreSQL's are shared by every process, so fewer are kept.
SQLITE_POOL = {"pool_size": 20, "max_overflow": 20}
POSTGRES_POOL = {"pool_size": 10, "max_overflow": 10}
# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 10.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    return _postgres_engine(url, **kwargs)


def _postgres_engine(url: str, **kwargs: Any) -> Engine:
    """Connections that sat idle are checked before use, so one dropped while idle (a server
    restart, a network timeout) is replaced rather than failing a request. A ping on every
    checkout (`pool_pre_ping`) would be a round trip per transaction, several per page, for
    connections in use moments ago; a connection lost mid-use is invalidated by the pool."""
    engine = create_engine(url, **{**POSTGRES_POOL, **kwargs})

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool retries with a new connection
            raise exc.DisconnectionError("idle connection lost") from error

    return engine


class WriterTurnConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue for their turn on an OS file lock.

    SQLite lets one transaction write at a time, and one that finds the lock taken polls for
    it, sleeping 1, 2, 5, 10, then up to 100 ms between tries: under concurrent writers (the
    audit entries of every page, from every worker process) a write waits several times
    longer than the one before it takes. Queued on `flock`, the next writer wakes the moment
    the lock is free. The file lock is taken before `BEGIN IMMEDIATE` and released once the
    transaction ends, so SQLite's own lock is then free at once; the OS drops it if the
    process dies. Writers that do not queue (other programs) still meet SQLite's lock.
    """

    _turns_fd: int | None = None
    _holding = False

    def queue_writers_on(self, lock_path: str) -> None:
        self._turns_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def take_writer_turn(self) -> None:
        if self._turns_fd is not None and not self._holding:
            fcntl.flock(self._turns_fd, fcntl.LOCK_EX)  # waits without the GIL
            self._holding = True

    def _end_turn(self) -> None:
        if self._holding:
            self._holding = False
            fcntl.flock(self._turns_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_turn()
            if self._turns_fd is not None:
                os.close(self._turns_fd)
                self._turns_fd = None


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    path = url.split("///", 1)[-1]
    on_disk = bool(path) and path != ":memory:"
    if on_disk:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {**SQLITE_POOL, **kwargs}
    connect_args = {"check_same_thread": False, "timeout": 30, "factory": WriterTurnConnection}
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # SAVEPOINTs and BEGIN work as documented (SQLAlchemy's pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Read the database through a memory map rather than a read() call per page: an
        # indexed page read costs a fraction as much (address space, not memory, up to 1 GiB).
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.close()
        record.info["synchronous"] = "NORMAL"
        if on_disk:
            dbapi_connection.queue_writers_on(path + "-writers")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # WAL with synchronous=NORMAL loses no commit when the process dies, but the last ones
        # can roll back after a power cut; durable work syncs the log at commit (FULL). The
        # level cannot change inside a transaction, so it is set here, on every begin.
        # A read-only transaction commits nothing, so its level does not matter: left as is.
        read_only = _beginning_read_only.get()
        if not read_only:
            connection.connection.dbapi_connection.take_writer_turn()
        level = "FULL" if connection.get_execution_options().get(DURABLE) else "NORMAL"
        info = connection.connection.info
        if not read_only and info.get("synchronous") != level:
            connection.exec_driver_sql(f"PRAGMA synchronous={level}")
            info["synchronous"] = level
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once ("database is locked") if another writer committed in between,
        # and most work writes. A read-only session (`read_only`) begins DEFERRED instead: it
        # takes a snapshot and never holds or waits for the write lock (WAL readers never block).
        try:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
        except BaseException:
            connection.connection.dbapi_connection.rollback()  # ends the turn
            raise

    return engine


def make_sessionmaker(engine: Engine, settings: object | None = None) -> sessionmaker[Session]:
    """Sessions carry the settings they were made under (see `tagwatch.settings.settings_of`),
    so event handlers and periodic tasks use the app's settings, not the environment's."""
    return sessionmaker(bind=engine, expire_on_commit=False, info={"settings": settings})


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed once, at the end, or rolled back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def durable_unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work whose commit is on disk when it returns, even on SQLite (see `_on_begin`).

    PostgreSQL's commits already are (`synchronous_commit` on).
    """
    with unit_of_work(factory) as session:
        session.connection(execution_options={DURABLE: True})  # begins now, synced at commit
        yield session


@contextmanager
def durable_transaction(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """`durable_unit_of_work` as a plain connection, for a few statements that need no ORM:
    the session's own bookkeeping would cost more than they do."""
    engine = factory.kw["bind"]
    if isinstance(engine, Connection):
        # A factory bound to a connection already in a transaction: a savepoint in it, as the
        # factory's sessions get (`join_transaction_mode`).
        with engine.begin_nested():
            yield engine
        return
    with (
        engine.connect().execution_options(**{DURABLE: True}) as connection,
        connection.begin(),
    ):
        yield connection


@contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for work that only reads; its transaction ends when the block does.

    On SQLite its transaction begins DEFERRED, so readers never queue behind writers or each
    other. Changes through it are refused (`ReadOnlySessionError`): a deferred transaction that
    reads and then writes is refused the write lock whenever another writer got in between.
    """
    session = factory()
    session.info[READ_ONLY] = True
    token = _beginning_read_only.set(True)
    try:
        session.connection()  # begin now, while the flag says how
    except BaseException:
        session.close()
        raise
    finally:
        _beginning_read_only.reset(token)
    try:
        yield session
        # Ends the snapshot. Commit, not rollback: nothing was changed, and a rollback would
        # expire what the caller loaded (sessions here keep objects readable after commit).
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _refuse(session: Session, what: str) -> None:
    raise ReadOnlySessionError(f"{what} in a read-only session: use a unit of work to change data")


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if not session.info.get(READ_ONLY):
        return
    if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
        _refuse(session, "a flush of changed objects")


@event.listens_for(Session, "do_orm_execute")
def _refuse_statements(state: ORMExecuteState) -> None:
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and state.session.info.get(READ_ONLY):
        _refuse(state.session, "an INSERT, UPDATE or DELETE")
