"""Every change to an alert is written twice: a row in its history and an entry in the audit log.

A batch of changes is collected in a `Journal` and written together, in the order the changes
were made: the history rows in one insert, the audit entries in one chained append.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from tagwatch.access.audit import NewEntry, record_many
from tagwatch.access.principal import Principal
from tagwatch.alerts import repository

SYSTEM = "system"


class HasId(Protocol):
    """An alert, or one about to be inserted: its id is read when the journal is written."""

    @property
    def id(self) -> int | None: ...


@dataclass(frozen=True)
class _Change:
    alert: HasId
    action: str
    at: dt.datetime
    detail: dict[str, object]


class Journal:
    """The changes one actor (`principal`, or None for the system) made, written by `write`."""

    def __init__(self, principal: Principal | None = None) -> None:
        self.principal = principal
        self._changes: list[_Change] = []

    def add(self, alert: HasId, action: str, at: dt.datetime, detail: dict[str, object]) -> None:
        stored: dict[str, object] = json.loads(json.dumps(detail, default=_json_value))
        self._changes.append(_Change(alert, action, at, stored))

    def write(self, session: Session) -> None:
        """History rows, then audit entries, in the order the changes were added."""
        if not self._changes:
            return
        actor = self.principal.username if self.principal else SYSTEM
        ids = [_id_of(change.alert) for change in self._changes]
        repository.insert_history(
            session,
            [
                {
                    "alert_id": alert_id,
                    "at": c.at,
                    "actor": actor,
                    "action": c.action,
                    "detail": c.detail,
                }
                for alert_id, c in zip(ids, self._changes, strict=True)
            ],
        )
        record_many(
            session,
            self.principal,
            (
                NewEntry(f"alert.{c.action}", "alert", subject_id=alert_id, detail=c.detail)
                for alert_id, c in zip(ids, self._changes, strict=True)
            ),
        )
        self._changes.clear()


def record_change(
    session: Session,
    alert: HasId,
    principal: Principal | None,
    action: str,
    at: dt.datetime,
    detail: dict[str, object],
) -> None:
    """One change, written at once."""
    journal = Journal(principal)
    journal.add(alert, action, at, detail)
    journal.write(session)


def _id_of(alert: HasId) -> int:
    if alert.id is None:
        raise RuntimeError("a journal names an alert that was never inserted")
    return alert.id


def _json_value(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
