"""`record_many`: a batch of entries appended in one go is the chain `record` builds one by one."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from test_access_audit import ANALYST, race_engine, run_together  # noqa: F401  (a fixture)

from tagwatch.access.audit import NewEntry, entry_hash, reading, record, record_many, verify
from tagwatch.access.models import AuditEntry
from tagwatch.db.engine import ReadOnlySessionError, make_sessionmaker, read_only, unit_of_work

MOMENT = dt.datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=dt.UTC)
# PostgreSQL text holds no NUL character.
storable = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
details = st.dictionaries(
    st.text(storable, min_size=1, max_size=8),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.text(storable, max_size=20),
        st.lists(st.integers(0, 10**6), max_size=4),
        st.just(MOMENT),  # not JSON: stored as its text, by both ways in
    ),
    max_size=4,
)
entries = st.lists(
    st.builds(
        NewEntry,
        action=st.sampled_from(["alert.raised", "alert.notified", "test.lookup"]),
        subject_type=st.sampled_from(["alert", "order"]),
        subject_id=st.one_of(
            st.none(), st.integers(1, 10**9), st.text(storable, min_size=1, max_size=12)
        ),
        purpose=st.one_of(st.none(), st.just("supervision")),
        detail=st.one_of(st.none(), details),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=entries, principal=st.sampled_from([None, ANALYST]))
def test_a_batch_is_the_chain_one_by_one_would_build(
    db: Session, batch: list[NewEntry], principal: Any
) -> None:
    one_by_one = _appended(db, batch, principal, together=False)
    together = _appended(db, batch, principal, together=True)
    assert together == one_by_one


def test_batches_and_single_entries_interleave_in_one_chain(db: Session) -> None:
    before = db.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    record(db, ANALYST, "test.first", subject_type="test_subject")
    assert record_many(db, None, [NewEntry("test.batch", "test_subject", i) for i in range(3)]) == 3
    record(db, ANALYST, "test.last", subject_type="test_subject")
    assert record_many(db, None, []) == 0

    appended = _entries_after(db, before)
    assert [e.action for e in appended] == ["test.first"] + ["test.batch"] * 3 + ["test.last"]
    assert [e.subject_id for e in appended[1:4]] == ["0", "1", "2"]
    assert appended[0].prev_hash == (before.hash if before else "0" * 64)
    for previous, entry in itertools.pairwise(appended):
        assert entry.prev_hash == previous.hash
        assert entry.hash == entry_hash(entry)
    check = verify(db)
    assert check.ok, check.reason


def test_the_hash_format_is_unchanged(db: Session) -> None:
    """Pinned independently of the code: chains already stored must still verify."""
    record(db, ANALYST, "test.single", subject_type="test_subject", subject_id=7)
    record_many(db, None, [NewEntry("test.batch", "test_subject", 8, "supervision", {"n": 1})])
    db.expire_all()
    for entry in db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(2)):
        canonical = {
            "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "user_id": entry.user_id,
            "username": entry.username,
            "role": entry.role,
            "action": entry.action,
            "subject_type": entry.subject_type,
            "subject_id": entry.subject_id,
            "purpose": entry.purpose,
            "detail": entry.detail,
            "request_id": entry.request_id,
            "prev_hash": entry.prev_hash,
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry.hash == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_a_batch_checks_every_entry_before_appending_any(db: Session) -> None:
    before = db.scalar(select(func.count()).select_from(AuditEntry))
    with pytest.raises(ValueError, match="subject_type"):
        record_many(db, None, [NewEntry("test.ok", "test_subject"), NewEntry("test.bad", "")])
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_a_reads_batch_is_queued_and_a_read_only_session_refuses_one(
    race_engine: Engine,  # noqa: F811
) -> None:
    factory = make_sessionmaker(race_engine)
    with reading(factory) as session:
        record_many(session, ANALYST, [NewEntry("test.view", "test_subject", i) for i in (1, 2)])
        assert _count(factory) == 0  # queued until the reads are done
    assert _count(factory) == 2
    with pytest.raises(ReadOnlySessionError), read_only(factory) as session:
        record_many(session, ANALYST, [NewEntry("test.view", "test_subject")])
    assert _count(factory) == 2


def test_concurrent_batches_keep_one_chain(race_engine: Engine) -> None:  # noqa: F811
    factory = make_sessionmaker(race_engine)

    def writer(n: int) -> None:
        for _ in range(4):
            with unit_of_work(factory) as session:
                record_many(session, None, [NewEntry("test.batch", "writer", n)] * 5)

    assert run_together([partial(writer, n) for n in range(4)]) == []
    with factory() as session:
        check = verify(session)
    assert check.ok and check.checked == _count(factory) == 4 * 4 * 5


def _appended(
    db: Session, batch: list[NewEntry], principal: Any, *, together: bool
) -> list[tuple[Any, ...]]:
    """What appending `batch` stores (all but ids, times and hashes), rolled back after."""
    savepoint = db.begin_nested()
    try:
        before = db.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        if together:
            record_many(db, principal, batch)
        else:
            for e in batch:
                record(
                    db,
                    principal,
                    e.action,
                    subject_type=e.subject_type,
                    subject_id=e.subject_id,
                    purpose=e.purpose,
                    detail=e.detail,
                )
        check = verify(db)
        assert check.ok, check.reason
        db.expire_all()  # what the database holds
        return [
            (
                e.username,
                e.user_id,
                e.role,
                e.action,
                e.subject_type,
                e.subject_id,
                e.purpose,
                e.detail,
                e.request_id,
            )
            for e in _entries_after(db, before)
        ]
    finally:
        savepoint.rollback()


def _entries_after(db: Session, last: AuditEntry | None) -> list[AuditEntry]:
    statement = select(AuditEntry).order_by(AuditEntry.id)
    if last is not None:
        statement = statement.where(AuditEntry.id > last.id)
    return list(db.scalars(statement))


def _count(factory: Any) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
