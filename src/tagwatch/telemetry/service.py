"""The ingestion pipeline every channel shares: validate, dedupe, store raw, judge, publish.

One call stores one batch of records inside the caller's transaction (it never commits): the
channel acknowledges the records only after its commit. Duplicates are recognised by their
dedupe key with insert-or-ignore, so a batch sent twice, or re-sent after a crash between
receipt and commit, stores nothing twice. A batch is first prepared (`columns.prepare`:
rejected records apart, the rest as columns and staged rows), which needs no database, so
the file channel prepares its next chunk in another process (`ingest_prepared`). The new
fixes stay in memory until the transaction ends (`recent`): compliance, evaluating in the
same transaction, reads them back from there rather than from the database.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from tagwatch.events import publish
from tagwatch.settings import Settings
from tagwatch.telemetry import recent, repository
from tagwatch.telemetry.allocations import AllocationIndex
from tagwatch.telemetry.columns import Item, Prepared, prepare, staging_image
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.events import TelemetryStored
from tagwatch.telemetry.feed import (
    FieldError,
    Parsed,
    csv_columns,
    parse_csv_row,
    parse_line,
)
from tagwatch.telemetry.plausibility import SPEED_PREFIX
from tagwatch.telemetry.store import (
    NO_ALLOCATION,
    SpeedVerdicts,
    Stored,
    Windows,
    judge_speed,
    store_events,
    store_fixes,
)


@dataclass
class Rejection:
    position: int
    errors: list[FieldError]
    quarantine_id: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "quarantine_id": self.quarantine_id,
            "errors": [{"field": e.field, "reason": e.reason} for e in self.errors],
        }


@dataclass
class IngestResult:
    """The answer to every call: what was accepted (stored new), duplicate or rejected.
    `unallocated` and `implausible` count accepted records that no allocation covers yet
    and fixes flagged implausible."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    unallocated: int = 0
    implausible: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    batch_ids: list[int] = field(default_factory=list)
    # With `ingest(..., detail=True)`: dedupe key -> (unallocated, implausible) of each
    # record stored new, so a caller that merged several messages can answer each.
    stored: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "unallocated": self.unallocated,
            "implausible": self.implausible,
        }

    def add(self, other: IngestResult) -> None:
        for name, value in other.counts().items():
            setattr(self, name, getattr(self, name) + value)
        self.rejections.extend(other.rejections)
        self.batch_ids.extend(other.batch_ids)
        self.stored.update(other.stored)

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts(), "rejections": [r.as_dict() for r in self.rejections]}


def ingest(
    session: Session,
    items: Iterable[Item],
    *,
    channel: str,
    origin: str,
    settings: Settings,
    received_at: dt.datetime,
    detail: bool = False,
) -> IngestResult:
    """Store one batch of records and answer with what happened to each."""
    prepared = prepare(
        items if isinstance(items, list) else list(items), image=repository.stages_images(session)
    )
    return ingest_prepared(
        session,
        prepared,
        channel=channel,
        origin=origin,
        settings=settings,
        received_at=received_at,
        detail=detail,
    )


def ingest_prepared(
    session: Session,
    prepared: Prepared,
    *,
    channel: str,
    origin: str,
    settings: Settings,
    received_at: dt.datetime,
    detail: bool = False,
) -> IngestResult:
    """`ingest` for a batch prepared already (`columns.prepare`, perhaps in another
    process, with an image where the store takes one)."""
    repository.tune_for_bulk(session)
    now_ms = to_ms(received_at)
    # The receipt row goes first: on SQLite it takes the write lock before anything is read.
    batch_id = repository.insert_batch(
        session, channel=channel, origin=origin, received_at=received_at
    )
    result = IngestResult(batch_ids=[batch_id], received=prepared.received)
    _quarantine(session, prepared.rejected, result, batch_id, channel, origin, received_at)
    fixes, events = prepared.fixes, prepared.events
    if repository.stages_images(session):
        image = prepared.image or staging_image(fixes.rows or [], events.rows or [])
        repository.stage_image(session, image)

    serials = set(fixes.serials) | set(events.serials)
    allocations = AllocationIndex(repository.allocation_spans(session, serials))
    # Lock the devices first (in serial order): concurrent batches that share a device take
    # turns, so their speed chains see each other and their inserts cannot deadlock.
    states = repository.lock_tracks(session, serials)
    skew_ms = settings.clock_skew_seconds * 1000
    new_fixes = store_fixes(session, fixes, allocations, batch_id, now_ms, skew_ms)
    new_events = store_events(session, events, allocations, batch_id, now_ms)
    result.accepted = len(new_fixes) + len(new_events)
    result.duplicate = result.received - result.rejected - result.accepted
    windows = Windows()
    windows.add(new_fixes.allocation_id, new_fixes.t_ms)
    windows.add(new_events.allocation_id, new_events.t_ms)

    verdicts = judge_speed(session, new_fixes, states, windows, settings.max_speed_mps)
    speed_flagged = verdicts.flagged
    _hold_for_reading_back(session, new_fixes, verdicts)
    result.unallocated = new_fixes.unallocated + new_events.unallocated
    static = sum(1 for reason in new_fixes.reasons if reason is not None)
    result.implausible = static + len(speed_flagged)
    if detail:
        result.stored = _outcomes(new_fixes, speed_flagged) | _outcomes(new_events, set())
    repository.finish_batch(session, batch_id, result.counts())
    if windows.spans:
        publish(session, TelemetryStored(windows=windows.as_times(), received_at=received_at))
    return result


def _hold_for_reading_back(session: Session, fixes: Stored, verdicts: SpeedVerdicts) -> None:
    """Keep the new attached fixes in memory for the transaction (`recent`), where the
    insert told their ids."""
    if fixes.record_id is None:  # nothing held: every read goes to the database
        return
    attached = fixes.allocation_id != NO_ALLOCATION
    accepted = np.array(
        [
            reason is None and key not in verdicts.flagged
            for key, reason in zip(fixes.keys, fixes.reasons, strict=True)
        ],
        dtype=bool,
    )
    held = recent.Columns(
        fixes.record_id,
        fixes.allocation_id,
        fixes.t_ms,
        fixes.lat,
        fixes.lon,
        fixes.accuracy_m,
        accepted,
    )
    recent.remember(session, held.take(attached), verdicts.rejudged)


def _outcomes(stored: Stored, speed_flagged: set[str]) -> dict[str, tuple[bool, bool]]:
    """Dedupe key -> (unallocated, implausible) of each record stored new."""
    unallocated = (stored.allocation_id == NO_ALLOCATION).tolist()
    return {
        key: (alone, reason is not None or key in speed_flagged)
        for key, alone, reason in zip(stored.keys, unallocated, stored.reasons, strict=True)
    }


def _quarantine(
    session: Session,
    rejected: list[Item],
    result: IngestResult,
    batch_id: int,
    channel: str,
    origin: str,
    received_at: dt.datetime,
) -> None:
    rows = [
        {
            "batch_id": batch_id,
            "channel": channel,
            "origin": origin[:300],
            "position": item.position,
            "raw_text": _text(item.raw),
            "csv_header": item.csv_header,
            "errors": [{"field": e.field, "reason": e.reason} for e in item.parsed],  # type: ignore[union-attr]
            "received_at": received_at,
            "status": "quarantined",
            "replay_count": 0,
        }
        for item in rejected
    ]
    ids = repository.insert_quarantined(session, rows)
    for item, quarantine_id in zip(rejected, ids, strict=True):
        assert isinstance(item.parsed, list)
        result.rejections.append(Rejection(item.position, item.parsed, quarantine_id))
    result.rejected = len(rejected)


def _text(raw: str | bytes) -> str:
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


# --- late allocations ------------------------------------------------------------------


def attach_allocation(
    session: Session,
    *,
    allocation_id: int,
    device_serial: str,
    fitted_at: dt.datetime,
    removed_at: dt.datetime | None,
) -> tuple[dt.datetime, dt.datetime] | None:
    """Attach the device's unallocated records in [fitted_at, removed_at) to the allocation
    (and detach any outside it); tell compliance which period changed."""
    span = repository.attach_to_allocation(
        session,
        serial=device_serial,
        allocation_id=allocation_id,
        fitted_ms=to_ms(fitted_at),
        removed_ms=None if removed_at is None else to_ms(removed_at),
    )
    if span is None:
        return None
    window = (from_ms(span[0]), from_ms(span[1]))
    publish(
        session,
        TelemetryStored(windows={allocation_id: window}, received_at=dt.datetime.now(dt.UTC)),
    )
    return window


# --- quarantine -------------------------------------------------------------------------


@dataclass
class ReplayResult:
    released: list[int] = field(default_factory=list)
    still_rejected: dict[int, list[FieldError]] = field(default_factory=dict)
    ingest: IngestResult = field(default_factory=IngestResult)

    def as_dict(self) -> dict[str, Any]:
        return {
            "released": self.released,
            "still_rejected": [
                {
                    "quarantine_id": quarantine_id,
                    "errors": [{"field": e.field, "reason": e.reason} for e in errors],
                }
                for quarantine_id, errors in self.still_rejected.items()
            ],
            **self.ingest.counts(),
        }


def replay_quarantined(
    session: Session,
    *,
    ids: Iterable[int] | None,
    settings: Settings,
    received_at: dt.datetime,
    corrections: dict[int, str] | None = None,
) -> ReplayResult:
    """Validate quarantined records again (with corrected text where given). Those that pass
    enter the pipeline and are released; the rest stay quarantined with their new errors."""
    corrections = corrections or {}
    answer = ReplayResult()
    for rows in repository.quarantined_for_replay(session, None if ids is None else list(ids)):
        items: list[Item] = []
        passed: dict[int, str] = {}
        for row in rows:
            text = corrections.get(row.id, row.corrected_text or row.raw_text)
            parsed = reparse(text, row.csv_header)
            if isinstance(parsed, list):
                answer.still_rejected[row.id] = parsed
            else:
                items.append(Item(row.position or 0, text, parsed))
                passed[row.id] = parsed.dedupe_key
        if items:
            answer.ingest.add(
                ingest(
                    session,
                    items,
                    channel="replay",
                    origin="quarantine",
                    settings=settings,
                    received_at=received_at,
                )
            )
        repository.mark_replayed(
            session,
            released=passed,
            still_rejected=answer.still_rejected,
            corrections={i: t for i, t in corrections.items() if any(r.id == i for r in rows)},
            at=received_at,
        )
        answer.released.extend(passed)
    return answer


def reparse(text: str, csv_header: str | None) -> Parsed:
    """Parse a quarantined record's text the way its channel did."""
    if csv_header is None:
        return parse_line(text)
    columns = csv_columns(next(csv.reader([csv_header])))
    if isinstance(columns, list):
        return columns
    return parse_csv_row(columns, next(csv.reader([text]), []))


__all__ = ["SPEED_PREFIX", "IngestResult", "Item", "Rejection", "ingest", "ingest_prepared"]
