"""The fixes this transaction has stored, held in memory to be read back without a query.

Compliance evaluates the allocations a chunk of records touched in the chunk's own
transaction, from a little before the chunk's earliest record: most of what it reads is what
the chunk has just written. `repository.load_fixes_from` takes those from here and reads
from the database only the rest, for an allocation whose fixes in memory the database proves
complete (see there). What is held stays true of the database as long as no fix changes its
allocation or verdict: an attachment forgets everything held, and a re-judged speed chain
forgets its allocations, which are then read from the database.

Held per transaction: a commit or any rollback (a savepoint's too: what it stored is gone)
forgets everything held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_KEY = "tagwatch.telemetry.recent"


@dataclass
class Columns:
    """Fixes as columns, sorted by (allocation, time, id); `accepted`: plausible."""

    record_id: NDArray[np.int64]
    allocation_id: NDArray[np.int64]
    t_ms: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    accuracy_m: NDArray[np.float64]
    accepted: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.record_id.shape[0])

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> Columns:
        return Columns(
            self.record_id[index],
            self.allocation_id[index],
            self.t_ms[index],
            self.lat[index],
            self.lon[index],
            self.accuracy_m[index],
            self.accepted[index],
        )

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        joined = Columns(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))
        order = np.lexsort((joined.record_id, joined.t_ms, joined.allocation_id))
        return joined.take(order)


_FIELDS = ("record_id", "allocation_id", "t_ms", "lat", "lon", "accuracy_m", "accepted")


@dataclass
class RecentFixes:
    """The attached fixes the transaction stored, whatever their verdict, but for those of
    the allocations in `forgotten`."""

    transaction: SessionTransaction
    parts: list[Columns] = field(default_factory=list)
    forgotten: set[int] = field(default_factory=set)
    _joined: Columns | None = None

    def columns(self) -> Columns:
        """All held, sorted; the forgotten allocations' left out."""
        if self._joined is None:
            joined = Columns.concat(self.parts)
            if self.forgotten:
                joined = joined.take(~np.isin(joined.allocation_id, list(self.forgotten)))
            self.parts, self._joined = [joined], joined
        return self._joined


def remember(session: Session, fixes: Columns, rejudged: set[int]) -> None:
    """Hold a batch's new attached fixes; forget the allocations whose stored fixes the
    batch re-judged (their verdicts in memory may be out of date)."""
    held = _held(session, create=True)
    if held is None:  # no transaction to hold them for
        return
    held.parts.append(fixes)
    held.forgotten |= rejudged
    held._joined = None


def forget(session: Session) -> None:
    """Forget everything held: the transaction ended, or stored fixes changed allocation."""
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _transaction_ended(session: Session, *_: object) -> None:
    forget(session)


def held(session: Session) -> Columns | None:
    """The fixes held for the session's current transaction, if any."""
    found = _held(session, create=False)
    if found is None or not found.parts:
        return None
    columns = found.columns()
    return columns if len(columns) else None


def _held(session: Session, *, create: bool) -> RecentFixes | None:
    transaction = session.get_transaction()
    found: RecentFixes | None = session.info.get(_KEY)
    if found is not None and found.transaction is not transaction:
        found = None  # held for a transaction that has ended
        session.info.pop(_KEY)
    if found is None and create and transaction is not None:
        found = session.info[_KEY] = RecentFixes(transaction)
    return found
