"""The audit log: who did what, to which subject, why, and what they were shown.

Entries form a hash chain: each entry's hash is SHA-256 over a canonical serialisation of its
own fields plus the previous entry's hash, so editing, removing or reordering any entry breaks
every hash after it, and `verify` names the first entry that no longer fits.

Appends are serialised so the chain stays a line. PostgreSQL: a transaction-scoped advisory
lock taken before reading the last hash, held until commit. SQLite: a write statement takes the
database's single write lock before the last hash is read. On both, `prev_hash` is unique, so a
writer that raced anyway fails instead of forking the chain. Both locks hold across processes.

Two ways in, one chain:

- In a unit of work (a request that changes data, a task, a CLI command), `record` appends at
  once, in the caller's transaction: a change and its entry commit together or not at all.
  `record_many` appends a batch of changes' entries the same way, reading the last hash once.
- A page that only reads runs in `reading`: its reads hold no lock, `record` queues the entry,
  and when the reads are done the entries are appended in a short transaction of their own,
  committed before `reading` returns, so no page is sent whose entry is not durable. Requests
  arriving together share that transaction (`_GroupCommit`), so under load a view waits for a
  batch to commit, not for every view ahead of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Table, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow
from tagwatch.db.engine import READ_ONLY, ReadOnlySessionError, durable_transaction, read_only

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the advisory lock that guards appends on PostgreSQL.
_ADVISORY_LOCK_KEY = 7_412_023_001
SYSTEM_USERNAME = "system"
# `session.info` key of the entries a `reading` session has queued.
_QUEUE = "audit_queue"
_TABLE = cast(Table, AuditEntry.__table__)


def record(
    session: Session,
    principal: Principal | None,
    action: str,
    *,
    subject_type: str,
    subject_id: str | int | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. `principal` None means the system itself (periodic tasks, imports).

    `detail` says what was returned or searched for (counts, ids, terms); values that JSON
    cannot hold are stored as their text. In a `reading` session the entry is queued and the
    returned one is what will be appended (its id and hashes are set in the appended copy).
    """
    fields = _entry_fields(principal, action, subject_type, subject_id, purpose, detail)
    if _queued(session, [fields]):
        return AuditEntry(**fields)
    entry = AuditEntry(**fields)
    _append(session, [entry])
    return entry


@dataclass(frozen=True)
class NewEntry:
    """One entry for `record_many`: what `record` takes besides the session and principal."""

    action: str
    subject_type: str
    subject_id: str | int | None = None
    purpose: str | None = None
    detail: dict[str, Any] | None = None


def record_many(session: Session, principal: Principal | None, entries: Iterable[NewEntry]) -> int:
    """Append several entries, in order, as `record` would one by one, but in one statement:
    the last hash is read once and the entries are chained here. Returns how many."""
    rows = [
        _entry_fields(principal, e.action, e.subject_type, e.subject_id, e.purpose, e.detail)
        for e in entries
    ]
    if rows and not _queued(session, rows):
        _append_rows(session, rows)
    return len(rows)


def _queued(session: Session, rows: list[dict[str, Any]]) -> bool:
    """Queue the entries of a `reading` session (True); refuse those of another read-only one."""
    queue: list[dict[str, Any]] | None = session.info.get(_QUEUE)
    if queue is not None:
        queue.extend(rows)
        return True
    if session.info.get(READ_ONLY):
        raise ReadOnlySessionError("audit entries of a read-only session need audit.reading()")
    return False


def _entry_fields(
    principal: Principal | None,
    action: str,
    subject_type: str,
    subject_id: str | int | None,
    purpose: str | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything an entry holds but its place in the chain, fixed when the action happens."""
    if not action:
        raise ValueError("action: must not be empty")
    if not subject_type:
        raise ValueError("subject_type: must not be empty")
    return {
        "at": utcnow(),
        "user_id": principal.user_id if principal else None,
        "username": principal.username if principal else SYSTEM_USERNAME,
        "role": principal.role_label if principal else SYSTEM_USERNAME,
        "action": action,
        "subject_type": subject_type,
        "subject_id": None if subject_id is None else str(subject_id),
        "purpose": purpose,
        "detail": _json_normalised(detail or {}),
        "request_id": structlog.contextvars.get_contextvars().get("request_id"),
    }


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only session (`db.engine.read_only`) whose audit entries are appended after it.

    The entries are committed before the block exits; if the block raises, nothing was shown
    and nothing is appended, as when a unit of work rolls back.
    """
    with read_only(factory) as session:
        queue: list[dict[str, Any]] = []
        session.info[_QUEUE] = queue
        yield session
    if queue:
        _GROUP_COMMIT.append(factory, queue)


@dataclass(eq=False)
class _Ticket:
    factory: sessionmaker[Session]
    entries: list[dict[str, Any]]
    done: bool = False
    error: BaseException | None = None


class AuditAppendError(RuntimeError):
    """The audit entries of a read could not be appended, so the read must not be shown."""


class _GroupCommit:
    """Appends the entries of concurrent `reading` sessions, a batch per transaction.

    Each caller queues a ticket, then takes its turn; whoever holds the turn appends every
    ticket queued for its store in one transaction. A caller whose ticket was in an earlier
    batch finds it done when its turn comes and returns at once. One batch per process is in
    flight at a time; the database lock orders batches from different processes.
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._queued = threading.Lock()
        self._tickets: list[_Ticket] = []

    def append(self, factory: sessionmaker[Session], entries: list[dict[str, Any]]) -> None:
        ticket = _Ticket(factory, entries)
        with self._queued:
            self._tickets.append(ticket)
        with self._turn:
            if not ticket.done:
                self._commit(self._take(factory))
        if ticket.error is not None:
            raise AuditAppendError("the audit log could not record this read") from ticket.error

    def _take(self, factory: sessionmaker[Session]) -> list[_Ticket]:
        with self._queued:
            batch = [t for t in self._tickets if t.factory is factory]
            self._tickets = [t for t in self._tickets if t.factory is not factory]
        return batch

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            with durable_transaction(batch[0].factory) as connection:
                # Plain rows, chained here, one INSERT for the batch; copies, since chaining
                # writes into them and a ticket may be tried again on its own.
                rows = [dict(f) for t in batch for f in t.entries]
                _chain_rows(connection, rows)
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
            else:
                # One request's unstorable entry must not fail the others: each on its own.
                for ticket in batch:
                    self._commit([ticket])
        except BaseException as interrupted:
            # Nobody in the batch may take their read as recorded.
            for ticket in batch:
                ticket.error = interrupted
            raise
        finally:
            for ticket in batch:
                ticket.done = True


_GROUP_COMMIT = _GroupCommit()


# What an entry's hash covers: every field but its id and its own hash.
_HASHED = (
    "at",
    "user_id",
    "username",
    "role",
    "action",
    "subject_type",
    "subject_id",
    "purpose",
    "detail",
    "request_id",
    "prev_hash",
)


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's fields (not its id) and the previous entry's hash."""
    return _fields_hash({name: getattr(entry, name) for name in _HASHED})


def _fields_hash(entry: Mapping[str, Any]) -> str:
    fields = {name: entry[name] for name in _HASHED}
    fields["at"] = fields["at"].astimezone(dt.UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def verify(session: Session) -> ChainCheck:
    """Walk the chain in order; stop at the first entry whose links or hash do not fit."""
    entries = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    )
    return verify_entries(entries)


def verify_entries(entries: Iterable[AuditEntry]) -> ChainCheck:
    expected_prev = GENESIS_HASH
    checked = 0
    for entry in entries:
        if entry.prev_hash != expected_prev:
            return ChainCheck(checked, entry.id, "previous hash does not match the entry before")
        if entry_hash(entry) != entry.hash:
            return ChainCheck(checked, entry.id, "contents do not match the entry's hash")
        expected_prev = entry.hash
        checked += 1
    return ChainCheck(checked)


_LOCK_POSTGRESQL = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_ADVISORY_LOCK_KEY)
# Touches no row (so the no-update trigger never fires) but takes SQLite's write lock.
_LOCK_SQLITE = text("UPDATE audit_entry SET id = id WHERE 0")
_LAST_HASH = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
_INSERT = insert(_TABLE)
# What a row given to `_chain_rows` may hold: the entry's columns but its id.
_ROW_FIELDS = frozenset(_TABLE.columns.keys()) - {"id"}


def _serialise_appends(connection: Connection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(_LOCK_POSTGRESQL)
    elif dialect == "sqlite":
        connection.execute(_LOCK_SQLITE)


def _last_hash(connection: Connection) -> str:
    last: str | None = connection.execute(_LAST_HASH).scalar()
    return last or GENESIS_HASH


def _append(session: Session, entries: list[AuditEntry]) -> None:
    """Chain `entries`, in order, after the last entry, inside the caller's transaction."""
    session.flush()  # entries already added go before these
    connection = session.connection()
    _serialise_appends(connection)
    previous = _last_hash(connection)
    for entry in entries:
        entry.prev_hash = previous
        entry.hash = entry_hash(entry)
        previous = entry.hash
    session.add_all(entries)
    session.flush()


def _append_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """`_append` for entries given as their fields (see `_chain_rows`)."""
    session.flush()  # entries already added go before these
    _chain_rows(session.connection(), rows)


def _chain_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Chain entries given as their fields after the last entry, in the connection's
    transaction, and insert them in one executemany (no RETURNING, so rows go in in order on
    both backends and ids follow the chain). A row with a field the table lacks is refused."""
    for row in rows:
        if not row.keys() <= _ROW_FIELDS:
            raise ValueError(f"audit entry: unknown fields {sorted(row.keys() - _ROW_FIELDS)}")
    _serialise_appends(connection)
    previous = _last_hash(connection)
    for row in rows:
        row["prev_hash"] = previous
        row["hash"] = previous = _fields_hash(row)
    connection.execute(_INSERT, rows)


def _json_normalised(detail: dict[str, Any]) -> dict[str, Any]:
    """What the database will give back, so the hash is computed over the stored form."""
    normalised: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return normalised
