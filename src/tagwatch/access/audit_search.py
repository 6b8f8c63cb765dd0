"""Searching the audit log, shared by the API, the page and the CLI. Every search is audited."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.access.repository import AuditQuery, search_audit

MAX_PAGE_SIZE = 500


def audited_search(
    session: Session, principal: Principal | None, query: AuditQuery
) -> tuple[int, Sequence[AuditEntry]]:
    if not 1 <= query.limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit: must be between 1 and {MAX_PAGE_SIZE}")
    if query.offset < 0:
        raise ValueError("offset: must not be negative")
    if query.since and query.until and query.until <= query.since:
        raise ValueError("until: must be after since")
    total, entries = search_audit(session, query)
    record(
        session,
        principal,
        "audit.search",
        subject_type="audit_entry",
        detail={
            "terms": query.terms(),
            "total": total,
            "returned_ids": [e.id for e in entries],
        },
    )
    return total, entries
