"""The audit log: who did what, to which subject, why, and what they were shown.

Entries form a hash chain: each entry's hash is SHA-256 over a canonical serialisation of its
own fields plus the previous entry's hash, so editing, removing or reordering any entry breaks
every hash after it, and `verify` names the first entry that no longer fits.

Appends are serialised so the chain stays a line. PostgreSQL: a transaction-scoped advisory
lock taken before reading the last hash, held until commit. SQLite: a write statement takes the
database's single write lock before the last hash is read. On both, `prev_hash` is unique, so a
writer that raced anyway fails instead of forking the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the advisory lock that guards appends on PostgreSQL.
_ADVISORY_LOCK_KEY = 7_412_023_001
SYSTEM_USERNAME = "system"


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
    cannot hold are stored as their text.
    """
    if not action:
        raise ValueError("action: must not be empty")
    if not subject_type:
        raise ValueError("subject_type: must not be empty")
    _serialise_appends(session)
    entry = AuditEntry(
        at=utcnow(),
        user_id=principal.user_id if principal else None,
        username=principal.username if principal else SYSTEM_USERNAME,
        role=principal.role_label if principal else SYSTEM_USERNAME,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        purpose=purpose,
        detail=_json_normalised(detail or {}),
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        prev_hash=_last_hash(session),
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's fields (not its id) and the previous entry's hash."""
    fields = {
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


def _serialise_appends(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # Touches no row (so the no-update trigger never fires) but takes the write lock.
        session.execute(text("UPDATE audit_entry SET id = id WHERE 0"))


def _last_hash(session: Session) -> str:
    last = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    return last or GENESIS_HASH


def _json_normalised(detail: dict[str, Any]) -> dict[str, Any]:
    """What the database will give back, so the hash is computed over the stored form."""
    normalised: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return normalised
