"""The per-request database session: one transaction, committed before the response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tagwatch.db.engine import unit_of_work


def _request_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


# scope="function" commits before the response is sent, so a failed commit is a 500, not a lie.
DbSession = Annotated[Session, Depends(_request_session, scope="function")]
