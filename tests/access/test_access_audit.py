"""The audit log: append, verify, tamper detection, immutability, search (itself audited)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.access import audit
from tagwatch.access.audit import GENESIS_HASH, entry_hash, reading, record, verify
from tagwatch.access.models import AuditEntry, User
from tagwatch.access.principal import Principal
from tagwatch.access.service import create_token
from tagwatch.db.engine import (
    ReadOnlySessionError,
    make_engine,
    make_sessionmaker,
    read_only,
    unit_of_work,
)

ANALYST = Principal(
    user_id=None,
    username="analyst-a",
    display_name="Analyst A",
    roles=frozenset({"analyst"}),
    permissions=frozenset({"report:read"}),
)


def _append(db: Session, n: int) -> list[AuditEntry]:
    return [
        record(
            db,
            ANALYST,
            "test.lookup",
            subject_type="test_subject",
            subject_id=i,
            purpose="supervision",
            detail={"terms": {"surname": "Smith"}, "returned": [i, i + 1], "score": 0.5},
        )
        for i in range(n)
    ]


def test_entries_chain_and_verify(db: Session) -> None:
    entries = _append(db, 3)
    db.commit()
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert all(e.hash == entry_hash(e) for e in entries)
    db.expire_all()  # verify what the database holds, not what is in memory
    check = verify(db)
    assert check.ok and check.checked >= 3
    first = db.scalar(select(AuditEntry).order_by(AuditEntry.id).limit(1))
    assert first is not None and first.prev_hash == GENESIS_HASH


def test_system_entries_and_input_errors(db: Session) -> None:
    entry = record(db, None, "retention.purge", subject_type="order", detail={"n": 3})
    assert entry.username == "system" and entry.user_id is None
    with pytest.raises(ValueError, match="subject_type"):
        record(db, None, "x", subject_type="")


def _disable_immutability(db: Session) -> None:
    """Drop the guard inside the test's transaction (DDL is transactional on both backends)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_no_change"))
    else:
        db.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.execute(text("DROP TRIGGER audit_entry_no_delete"))


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_entry SET detail = '{\"returned\": []}' WHERE id = :id",
        "UPDATE audit_entry SET username = 'someone-else' WHERE id = :id",
        "DELETE FROM audit_entry WHERE id = :id",
    ],
)
def test_tampering_is_detected_at_the_first_changed_entry(db: Session, tamper: str) -> None:
    entries = _append(db, 4)
    db.commit()
    _disable_immutability(db)
    db.execute(text(tamper), {"id": entries[1].id})
    db.expire_all()
    check = verify(db)
    assert not check.ok
    # A deleted entry is noticed at the next one, whose link now points nowhere.
    broken = entries[2].id if tamper.startswith("DELETE") else entries[1].id
    assert check.first_broken_id == broken


def test_the_database_refuses_updates_and_deletes(db: Session) -> None:
    (entry,) = _append(db, 1)
    db.commit()
    for statement in (
        "UPDATE audit_entry SET action = 'nothing' WHERE id = :id",
        "DELETE FROM audit_entry WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement), {"id": entry.id})
    db.expire_all()
    assert db.get(AuditEntry, entry.id).action == "test.lookup"


def test_no_route_changes_the_audit_log(app: FastAPI) -> None:
    writers = [
        f"{ctx.methods} {ctx.path}"
        for ctx in iter_route_contexts(app.routes)
        if isinstance(ctx.original_route, APIRoute)
        and "audit" in (ctx.path or "")
        and set(ctx.methods or ()) - {"GET", "HEAD"}
    ]
    assert writers == []


def test_search_filters_and_is_itself_audited(
    app: FastAPI, db: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user("administrator", password=None)
    target = _append(db, 3)[1]
    issued = create_token(db, admin, "audit", ["audit:read"])
    db.commit()
    client = TestClient(app, headers={"Authorization": f"Bearer {issued.secret}"})
    found = client.get(
        "/api/v1/audit",
        params={
            "username": "analyst-a",
            "subject_type": "test_subject",
            "subject_id": target.subject_id,
        },
    )
    assert found.status_code == 200
    body = found.json()
    assert body["total"] == 1 and body["entries"][0]["id"] == target.id
    search = db.scalar(
        select(AuditEntry).where(AuditEntry.action == "audit.search").order_by(AuditEntry.id.desc())
    )
    assert search is not None and search.username == admin.username
    assert search.detail["terms"]["subject_id"] == target.subject_id
    assert search.detail["returned_ids"] == [target.id]
    bad = client.get(
        "/api/v1/audit",
        params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422 and "until" in bad.text
    assert client.get("/api/v1/audit", params={"since": "2026-02-01T00:00:00"}).status_code == 422


def test_search_page_shows_results_for_administrators(
    app: FastAPI, db: Session, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    admin = make_user("administrator", password=None)
    _append(db, 2)
    db.commit()
    browser = TestClient(app)
    browser.cookies.set("tagwatch_session", session_cookie(admin.id))
    page = browser.get("/audit", params={"username": "analyst-a", "date_from": "2000-01-01"})
    assert page.status_code == 200
    assert "test.lookup" in page.text and "matching" in page.text
    assert browser.get("/audit", params={"date_from": "31/12/2026"}).status_code == 400


@pytest.fixture
def race_engine(engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """A store of its own for committed writes, so no other test sees these entries."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS audit_race CASCADE"))
            connection.execute(text("CREATE SCHEMA audit_race"))
        isolated = make_engine(
            engine.url.render_as_string(hide_password=False),
            connect_args={"options": "-csearch_path=audit_race"},
        )
    else:
        isolated = make_engine(f"sqlite:///{tmp_path / 'race.db'}")
    AuditEntry.__table__.create(isolated)
    yield isolated
    isolated.dispose()
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA audit_race CASCADE"))


def run_together(tasks: Iterable[Callable[[], object]]) -> list[BaseException]:
    """Run each task in a thread of its own, all at once; what they raised, once all are done."""
    errors: list[BaseException] = []

    def run(task: Callable[[], object]) -> None:
        try:
            task()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_writers_keep_one_chain(race_engine: Engine) -> None:
    """Real commits from several threads: the chain must stay a single line."""
    factory = make_sessionmaker(race_engine)

    def writer() -> None:
        for _ in range(5):
            with unit_of_work(factory) as session:
                _append(session, 1)

    assert run_together([writer] * 6) == []
    with factory() as session:
        check = verify(session)
        total = session.scalar(select(func.count()).select_from(AuditEntry))
    assert check.ok and check.checked == total == 30


def _actions(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_read_appends_its_entries_when_the_reads_are_done(race_engine: Engine) -> None:
    factory = make_sessionmaker(race_engine)
    with reading(factory) as session:
        queued = record(session, ANALYST, "test.view", subject_type="test_subject", subject_id=1)
        record(session, ANALYST, "test.view", subject_type="test_subject", subject_id=2)
        assert _actions(factory) == []  # queued, not yet in the log
        assert queued.username == "analyst-a" and queued.hash is None
    assert _actions(factory) == ["test.view", "test.view"]  # durable once `reading` returns
    with pytest.raises(RuntimeError, match="page failed"), reading(factory) as session:
        record(session, ANALYST, "test.unshown", subject_type="test_subject")
        raise RuntimeError("page failed")
    assert "test.unshown" not in _actions(factory)  # nothing was shown, nothing is logged
    with factory() as session:
        assert verify(session).checked == 2


def test_a_read_only_session_refuses_changes(race_engine: Engine) -> None:
    factory = make_sessionmaker(race_engine)
    with pytest.raises(ReadOnlySessionError, match="read-only"), read_only(factory) as session:
        record(session, ANALYST, "test.view", subject_type="test_subject")
    with pytest.raises(ReadOnlySessionError, match="flush"), read_only(factory) as session:
        session.add(AuditEntry(username="x", role="x", action="x", subject_type="x"))
        session.flush()
    with pytest.raises(ReadOnlySessionError, match="INSERT"), read_only(factory) as session:
        session.execute(insert(AuditEntry).values(username="x", role="x", action="x"))
    assert _actions(factory) == []


def test_reads_do_not_wait_for_a_writer(race_engine: Engine) -> None:
    """A read-only session reads while another transaction holds the write lock."""
    factory = make_sessionmaker(race_engine)
    read: list[int] = []
    with unit_of_work(factory) as writer:
        _append(writer, 1)  # holds SQLite's write lock, or the advisory lock, until commit

        def reader() -> None:
            with read_only(factory) as session:
                read.append(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=5)
        assert read == [0], "the read waited for the writer to commit"


def test_concurrent_reads_and_writes_keep_one_chain(race_engine: Engine) -> None:
    """Reads (group-committed entries) and writes (entries in their own transaction) at once."""
    factory = make_sessionmaker(race_engine)

    def reader(n: int) -> None:
        for i in range(10):
            with reading(factory) as session:
                record(session, ANALYST, "test.view", subject_type="reader", subject_id=n)
                if i % 3 == 0:
                    record(session, ANALYST, "test.search", subject_type="reader")

    def writer() -> None:
        for _ in range(5):
            with unit_of_work(factory) as session:
                _append(session, 1)

    assert run_together([*(partial(reader, n) for n in range(8)), writer, writer]) == []
    with factory() as session:
        check = verify(session)
        total = session.scalar(select(func.count()).select_from(AuditEntry))
    assert check.ok and check.checked == total == 8 * (10 + 4) + 2 * 5


def test_one_unstorable_entry_fails_only_its_own_read(race_engine: Engine) -> None:
    factory = make_sessionmaker(race_engine)
    good = audit._entry_fields(None, "test.view", "test_subject", None, None, None)
    tickets = [
        audit._Ticket(factory, [good]),
        audit._Ticket(factory, [{**good, "no_such_field": 1}]),
        audit._Ticket(factory, [good, good]),
    ]
    audit._GroupCommit()._commit(tickets)
    assert [t.done for t in tickets] == [True, True, True]
    assert [t.error is None for t in tickets] == [True, False, True]
    assert _actions(factory) == ["test.view"] * 3
    with factory() as session:
        assert verify(session).ok


def test_a_reads_entries_are_synced_to_disk_at_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the append syncs the log (FULL); other work on the connection stays NORMAL."""
    engine = make_engine(f"sqlite:///{tmp_path / 'sync.db'}", pool_size=1, max_overflow=0)
    AuditEntry.__table__.create(engine)
    factory = make_sessionmaker(engine)
    levels: list[int] = []
    serialise = audit._serialise_appends

    def noting_the_level(connection: Connection) -> None:
        levels.append(connection.exec_driver_sql("PRAGMA synchronous").scalar())
        serialise(connection)

    monkeypatch.setattr(audit, "_serialise_appends", noting_the_level)
    with reading(factory) as session:
        record(session, ANALYST, "test.view", subject_type="test_subject")
    with unit_of_work(factory) as session:
        record(session, ANALYST, "test.change", subject_type="test_subject")
    engine.dispose()
    assert levels == [2, 1]  # FULL for the read's append, NORMAL for a unit of work
