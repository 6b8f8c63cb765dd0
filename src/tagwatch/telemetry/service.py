"""The ingestion pipeline every channel shares: validate, dedupe, store raw, judge, publish.

One call stores one batch of records inside the caller's transaction (it never commits): the
channel acknowledges the records only after its commit. Duplicates are recognised by their
dedupe key with insert-or-ignore, so a batch sent twice, or re-sent after a crash between
receipt and commit, stores nothing twice.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from sqlalchemy.orm import Session

from tagwatch.events import publish
from tagwatch.settings import Settings
from tagwatch.telemetry import repository
from tagwatch.telemetry.allocations import AllocationIndex
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.events import TelemetryStored
from tagwatch.telemetry.feed import (
    Event,
    FieldError,
    Fix,
    Parsed,
    csv_columns,
    parse_csv_row,
    parse_line,
)
from tagwatch.telemetry.plausibility import (
    SPEED_PREFIX,
    TrackPoint,
    judge_devices,
    static_problem,
)
from tagwatch.telemetry.repository import TrackState


class Item(NamedTuple):
    """One record as received: where it was (line number or array index), its raw text
    (kept only if it is rejected) and what parsing made of it."""

    position: int
    raw: str | bytes
    parsed: Parsed
    csv_header: str | None = None


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


@dataclass
class _Windows:
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)

    def touch(self, allocation_id: int | None, t_ms: int) -> None:
        if allocation_id is None:
            return
        low, high = self.spans.get(allocation_id, (t_ms, t_ms))
        self.spans[allocation_id] = (min(low, t_ms), max(high, t_ms))

    def as_times(self) -> dict[int, tuple[dt.datetime, dt.datetime]]:
        return {a: (from_ms(low), from_ms(high)) for a, (low, high) in self.spans.items()}


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
    repository.tune_for_bulk(session)
    now_ms = to_ms(received_at)
    # The receipt row goes first: on SQLite it takes the write lock before anything is read.
    batch_id = repository.insert_batch(
        session, channel=channel, origin=origin, received_at=received_at
    )
    result = IngestResult(batch_ids=[batch_id])
    fixes: dict[str, Fix] = {}
    events: dict[str, Event] = {}
    rejected: list[Item] = []
    for item in items:
        result.received += 1
        parsed = item.parsed
        if isinstance(parsed, list):
            rejected.append(item)
            continue
        key = parsed.dedupe_key
        if key in fixes or key in events:
            result.duplicate += 1
        elif isinstance(parsed, Fix):
            fixes[key] = parsed
        else:
            events[key] = parsed

    _quarantine(session, rejected, result, batch_id, channel, origin, received_at)
    result.duplicate += _drop_cross_table_duplicates(session, fixes, events)

    allocations = AllocationIndex(
        repository.allocation_spans(
            session, {f.device for f in fixes.values()} | {e.device for e in events.values()}
        )
    )
    windows = _Windows()
    # Lock the devices first (in serial order): concurrent batches that share a device take
    # turns, so their speed chains see each other and their inserts cannot deadlock.
    states = repository.lock_tracks(
        session, {f.device for f in fixes.values()} | {e.device for e in events.values()}
    )
    new_fixes = _store_fixes(session, fixes, allocations, batch_id, now_ms, settings)
    new_events = _store_events(session, events, allocations, batch_id, now_ms)
    result.accepted = len(new_fixes) + len(new_events)
    result.duplicate += len(fixes) + len(events) - result.accepted
    for allocation_id, t_ms, _reason in new_fixes.values():
        windows.touch(allocation_id, t_ms)
    for allocation_id, t_ms in new_events.values():
        windows.touch(allocation_id, t_ms)

    speed_flagged = _judge_speed(session, fixes, new_fixes, states, windows, settings)
    result.unallocated = sum(1 for a, _t, _r in new_fixes.values() if a is None) + sum(
        1 for a, _t in new_events.values() if a is None
    )
    result.implausible = sum(1 for _a, _t, reason in new_fixes.values() if reason is not None)
    result.implausible += len(speed_flagged)
    if detail:
        result.stored = {
            key: (allocation_id is None, reason is not None or key in speed_flagged)
            for key, (allocation_id, _t, reason) in new_fixes.items()
        }
        result.stored.update(
            {key: (allocation_id is None, False) for key, (allocation_id, _t) in new_events.items()}
        )
    repository.finish_batch(session, batch_id, result.counts())
    if windows.spans:
        publish(session, TelemetryStored(windows=windows.as_times(), received_at=received_at))
    return result


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


def _drop_cross_table_duplicates(
    session: Session, fixes: dict[str, Fix], events: dict[str, Event]
) -> int:
    """(device, seq) is one key space for every record type, but fixes and events live in
    two tables: a sequenced record already stored in the other table is a duplicate too.
    Drops those; how many it dropped."""
    dropped = 0
    for mine, other_table in ((fixes, "device_event"), (events, "gps_fix")):
        sequenced = [key for key, record in mine.items() if record.seq is not None]
        if sequenced:
            for key in repository.keys_present(session, other_table, sequenced):
                del mine[key]
                dropped += 1
    return dropped


def _store_fixes(
    session: Session,
    fixes: dict[str, Fix],
    allocations: AllocationIndex,
    batch_id: int,
    now_ms: int,
    settings: Settings,
) -> dict[str, tuple[int | None, int, str | None]]:
    """Insert the fixes; for those newly stored: key -> (allocation, t_ms, static reason)."""
    skew_ms = settings.clock_skew_seconds * 1000
    latest_ms = now_ms + skew_ms
    rows = []
    facts: dict[str, tuple[int | None, int, str | None]] = {}
    find = allocations.find
    for key, fix in fixes.items():
        device, t_ms, seq, received_ms, lat, lon, accuracy_m, source, extras = fix
        allocation_id = find(device, t_ms)
        reason = None
        # The cheap test first; static_problem words the reason.
        if (
            t_ms > latest_ms
            or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0)
            or (lat == 0.0 and lon == 0.0)
        ):
            reason = static_problem(fix, now_ms, skew_ms)
        facts[key] = (allocation_id, t_ms, reason)
        rows.append(
            (
                key,
                device,
                allocation_id,
                t_ms,
                now_ms if received_ms is None else received_ms,
                seq,
                lat,
                lon,
                accuracy_m,
                source,
                None if extras is None else orjson.dumps(extras).decode(),
                reason,
                batch_id,
            )
        )
    inserted = repository.insert_or_ignore(session, "gps_fix", rows)
    if inserted == len(rows):
        return facts
    mine = {
        key
        for key, batch in repository.keys_present(session, "gps_fix", list(facts)).items()
        if batch == batch_id
    }
    return {key: value for key, value in facts.items() if key in mine}


def _store_events(
    session: Session,
    events: dict[str, Event],
    allocations: AllocationIndex,
    batch_id: int,
    now_ms: int,
) -> dict[str, tuple[int | None, int]]:
    rows = []
    facts: dict[str, tuple[int | None, int]] = {}
    for key, event in events.items():
        allocation_id = allocations.find(event.device, event.t_ms)
        facts[key] = (allocation_id, event.t_ms)
        rows.append(
            (
                key,
                event.device,
                allocation_id,
                event.type,
                event.t_ms,
                now_ms if event.received_ms is None else event.received_ms,
                event.seq,
                orjson.dumps(dict(event.payload)).decode(),
                batch_id,
            )
        )
    inserted = repository.insert_or_ignore(session, "device_event", rows)
    if inserted == len(rows):
        return facts
    mine = {
        key
        for key, batch in repository.keys_present(session, "device_event", list(facts)).items()
        if batch == batch_id
    }
    return {key: value for key, value in facts.items() if key in mine}


def _judge_speed(
    session: Session,
    fixes: dict[str, Fix],
    new_fixes: dict[str, tuple[int | None, int, str | None]],
    states: dict[str, TrackState],
    windows: _Windows,
    settings: Settings,
) -> set[str]:
    """Run the speed chain over the new fixes (see `plausibility`); store changed verdicts.
    The keys of the new fixes it flagged."""
    tracks: dict[str, list[TrackPoint]] = {}
    for key, (_allocation, t_ms, reason) in new_fixes.items():
        if reason is None:
            fix = fixes[key]
            tracks.setdefault(fix.device, []).append(TrackPoint(t_ms, key, fix.lat, fix.lon))
    if not tracks:
        return set()
    starts: dict[str, TrackPoint | None] = {}
    previous: dict[str, tuple[str | None, int | None]] = {}  # key -> (verdict, allocation)
    for device, points in tracks.items():
        points.sort()
        state = states[device]
        if points[0].t_ms > state.max_t_ms:
            starts[device] = state.last
            continue
        # A late fix: re-judge the device's chain from the earliest new fix on.
        start, chain = repository.chain_context(session, device, points[0].t_ms)
        starts[device] = start
        tracks[device] = [row.point for row in chain]
        previous.update({row.point.key: (row.reason, row.allocation_id) for row in chain})
    verdicts, lasts = judge_devices(starts, tracks, settings.max_speed_mps)

    changed: list[tuple[str | None, str]] = []
    flagged_new: set[str] = set()
    for device, points in tracks.items():
        for point, verdict in zip(points, verdicts[device], strict=True):
            if point.key in new_fixes:
                if verdict is not None:
                    changed.append((verdict, point.key))
                    flagged_new.add(point.key)
                continue
            old_verdict, allocation_id = previous[point.key]
            if verdict != old_verdict:
                changed.append((verdict, point.key))
                windows.touch(allocation_id, point.t_ms)
        max_t = max(states[device].max_t_ms, points[-1].t_ms)
        states[device] = TrackState(max_t_ms=max_t, last=lasts[device])
    repository.set_verdicts(session, changed)
    repository.save_tracks(session, {device: states[device] for device in tracks})
    return flagged_new


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


__all__ = ["SPEED_PREFIX", "IngestResult", "Item", "Rejection", "ingest"]
