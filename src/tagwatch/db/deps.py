"""The per-request database session: one transaction, committed before the response.

`DbSession` is a unit of work, for requests that change data; `DurableSession` one whose
commit is on disk before the answer (telemetry a device will not resend). `ReadSession` is for
pages and answers that only read (and audit what they showed): its reads hold no lock, and its
audit entries are appended in a short transaction of their own once the reads are done
(`tagwatch.access.audit.reading`). All finish before the response is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tagwatch.access.audit import reading
from tagwatch.db.engine import durable_unit_of_work, unit_of_work


def _request_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


def _durable_session(request: Request) -> Iterator[Session]:
    with durable_unit_of_work(request.app.state.sessionmaker) as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    with reading(request.app.state.sessionmaker) as session:
        yield session


# scope="function" commits before the response is sent, so a failed commit is a 500, not a lie.
DbSession = Annotated[Session, Depends(_request_session, scope="function")]
# For acknowledgements a sender relies on (device telemetry): the commit is on disk, even on
# SQLite, before the answer is sent.
DurableSession = Annotated[Session, Depends(_durable_session, scope="function")]
# The same for reads: the audit entries are durable before the page is sent. A sync route
# taking it goes to the thread pool three times (the session's start, the route, its end); a
# busy async page can do all three in one (`tagwatch.web.portal.render.read_page`).
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
