"""Every response names its request, and a page's audit entry carries the same name.

The caller's `X-Request-ID` is kept (a proxy or gateway names requests across services);
without one, a new id is made. The id reaches the audit entry written from the page's worker
thread, so a log line, a response and an entry can be matched up.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal

CALLER = Principal(
    user_id=None,
    username="ids.tester",
    display_name="Ids Tester",
    roles=frozenset({"test"}),
    permissions=frozenset(PERMISSIONS),
)


def _caseload_entries(db: Session) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == "caseload.view").order_by(AuditEntry.id)
    return list(db.scalars(query))


def test_the_callers_request_id_is_echoed_and_audited(
    make_client: Callable[..., TestClient], db: Session
) -> None:
    client = make_client(CALLER)
    answer = client.get("/caseload", headers={"x-request-id": "gateway-4711"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "gateway-4711"
    assert [e.request_id for e in _caseload_entries(db)] == ["gateway-4711"]


def test_a_request_without_an_id_is_given_a_new_one_each_time(
    make_client: Callable[..., TestClient], db: Session
) -> None:
    client = make_client(CALLER)
    ids = [client.get("/caseload").headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]
    assert [e.request_id for e in _caseload_entries(db)] == ids
    # Refusals and errors are named too (the middleware is outside everything else).
    assert client.get("/no-such-page").headers["x-request-id"]
