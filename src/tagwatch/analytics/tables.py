"""The four tables of the daily export: their Arrow schemas and how stored rows become them.

Every table carries pseudonyms in place of people and devices, and nothing else that names or
locates a person: no names, addresses, identifiers (CRN, PNC, ...), case references, staff
names or free text. Record ids stay, so analysts can join violations to their evidence fixes.
Changing a column's meaning or removing one bumps `SCHEMA_VERSION`; adding one does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy.orm import Session

from tagwatch.analytics import repository
from tagwatch.analytics.pseudonyms import Pseudonyms
from tagwatch.analytics.repository import DayWindow

SCHEMA_VERSION = 1

UTC_MS = pa.timestamp("ms", tz="UTC")
UTC_US = pa.timestamp("us", tz="UTC")

FIXES = pa.schema(
    [
        pa.field("fix_id", pa.int64(), nullable=False),
        pa.field("person", pa.string()),
        pa.field("device", pa.string(), nullable=False),
        pa.field("observed_at", UTC_MS, nullable=False),
        pa.field("received_at", UTC_MS, nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("accuracy_m", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("sats", pa.int32()),
        pa.field("hdop", pa.float64()),
        pa.field("speed_mps", pa.float64()),
        pa.field("heading_deg", pa.float64()),
        pa.field("implausible_reason", pa.string()),
    ]
)

# Each event type's payload fields as columns (feed format v1); the rf home unit is a device.
_EVENT_FIELDS: dict[str, tuple[str, str, pa.DataType]] = {
    # column: (record type, payload field, type)
    "rf_state": ("rf", "state", pa.string()),
    "alcohol_tac_g_dl": ("alcohol", "tac_g_dl", pa.float64()),
    "alcohol_status": ("alcohol", "status", pa.string()),
    "battery_pct": ("status", "battery_pct", pa.float64()),
    "charging": ("status", "charging", pa.bool_()),
    "strap": ("status", "strap", pa.string()),
    "body": ("status", "body", pa.string()),
    "case": ("status", "case", pa.string()),
    "unit_power": ("status", "unit_power", pa.string()),
    "unit_moved": ("status", "unit_moved", pa.bool_()),
    "checkin_result": ("checkin", "result", pa.string()),
    "checkin_method": ("checkin", "method", pa.string()),
}

EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("person", pa.string()),
        pa.field("device", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("observed_at", UTC_MS, nullable=False),
        pa.field("received_at", UTC_MS, nullable=False),
        pa.field("rf_unit", pa.string()),
        *(pa.field(name, kind) for name, (_t, _f, kind) in _EVENT_FIELDS.items()),
    ]
)

VIOLATIONS = pa.schema(
    [
        pa.field("violation_id", pa.int64(), nullable=False),
        pa.field("person", pa.string()),
        pa.field("device", pa.string()),
        pa.field("rule_id", pa.string(), nullable=False),
        pa.field("rule_version", pa.string(), nullable=False),
        pa.field("rule_set_version", pa.string(), nullable=False),
        pa.field("condition_type", pa.string()),
        pa.field("start", UTC_US, nullable=False),
        pa.field("end", UTC_US),
        pa.field("duration_s", pa.float64()),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("needs_review", pa.bool_(), nullable=False),
        pa.field("withdrawn_at", UTC_US),
        pa.field("first_found_at", UTC_US, nullable=False),
        pa.field("evaluated_at", UTC_US, nullable=False),
        pa.field("evidence_fix_ids", pa.list_(pa.int64()), nullable=False),
        pa.field("evidence_event_ids", pa.list_(pa.int64()), nullable=False),
        # The earliest evidence fix: where the violation was first seen, when one exists.
        pa.field("evidence_fix_id", pa.int64()),
        pa.field("evidence_at", UTC_MS),
        pa.field("evidence_lat", pa.float64()),
        pa.field("evidence_lon", pa.float64()),
        pa.field("evidence_accuracy_m", pa.float64()),
    ]
)

ALERTS = pa.schema(
    [
        pa.field("alert_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("violation_id", pa.int64()),
        pa.field("person", pa.string()),
        pa.field("violation_type", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("needs_tamper_review", pa.bool_(), nullable=False),
        pa.field("delivery_unit_code", pa.string()),
        pa.field("event_at", UTC_US, nullable=False),
        pa.field("received_at", UTC_US, nullable=False),
        pa.field("evaluated_at", UTC_US, nullable=False),
        pa.field("raised_at", UTC_US, nullable=False),
        pa.field("notified_at", UTC_US),
        pa.field("acknowledged_at", UTC_US),
        pa.field("escalated_at", UTC_US),
        pa.field("tamper_finding", pa.string()),
        pa.field("outcome_due_at", UTC_US, nullable=False),
        pa.field("outcome", pa.string()),
        pa.field("outcome_at", UTC_US),
        pa.field("violation_ended_at", UTC_US),
        pa.field("violation_withdrawn_at", UTC_US),
    ]
)

_EMPTY: dict[str, Any] = {}

Batches = Callable[[Session, DayWindow, Pseudonyms, int], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class ExportTable:
    name: str
    schema: pa.Schema
    # The column whose UTC day places a row in the day's partition.
    day_column: str
    batches: Batches


def _fix_batches(
    session: Session, window: DayWindow, names: Pseudonyms, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    people = _AllocationPeople(session, names)
    for rows in repository.fixes(session, window, chunk_rows):
        (ids, allocation_ids, serials, t_ms, received_ms, lat, lon, accuracy, source, extras,
         implausible) = zip(*rows, strict=True)  # fmt: skip
        extra = [_EMPTY if e is None else orjson.loads(e) or _EMPTY for e in extras]
        yield pa.RecordBatch.from_pydict(
            {
                "fix_id": ids,
                "person": people.of(allocation_ids),
                "device": [names.device(s) for s in serials],
                "observed_at": t_ms,
                "received_at": received_ms,
                "lat": lat,
                "lon": lon,
                "accuracy_m": accuracy,
                "source": source,
                "sats": [e.get("sats") for e in extra],
                "hdop": [e.get("hdop") for e in extra],
                "speed_mps": [e.get("speed_mps") for e in extra],
                "heading_deg": [e.get("heading_deg") for e in extra],
                "implausible_reason": implausible,
            },
            schema=FIXES,
        )


def _event_batches(
    session: Session, window: DayWindow, names: Pseudonyms, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    people = _AllocationPeople(session, names)
    for rows in repository.events(session, window, chunk_rows):
        ids, allocation_ids, serials, types, t_ms, received_ms, payloads = zip(*rows, strict=True)
        columns: dict[str, Any] = {
            "event_id": ids,
            "person": people.of(allocation_ids),
            "device": [names.device(s) for s in serials],
            "type": types,
            "observed_at": t_ms,
            "received_at": received_ms,
            "rf_unit": [
                names.device(p.get("unit")) if t == "rf" else None
                for t, p in zip(types, payloads, strict=True)
            ],
        }
        for column, (record_type, field, _kind) in _EVENT_FIELDS.items():
            columns[column] = [
                p.get(field) if t == record_type else None
                for t, p in zip(types, payloads, strict=True)
            ]
        yield pa.RecordBatch.from_pydict(columns, schema=EVENTS)


def _violation_batches(
    session: Session, window: DayWindow, names: Pseudonyms, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    for rows in repository.violations(session, window, chunk_rows):
        places = repository.fix_places(session, (i for r in rows for i in r.evidence_fixes))
        first = [
            min(
                (i for i in r.evidence_fixes if i in places),
                key=lambda i: (places[i].t_ms, i),
                default=None,
            )
            for r in rows
        ]
        seen = [None if i is None else places[i] for i in first]
        yield pa.RecordBatch.from_pydict(
            {
                "violation_id": [r.id for r in rows],
                "person": [names.person(r.person_ref) for r in rows],
                "device": [names.device(r.device_serial) for r in rows],
                "rule_id": [r.rule_id for r in rows],
                "rule_version": [r.rule_version for r in rows],
                "rule_set_version": [r.rule_set_version for r in rows],
                "condition_type": [r.condition_type for r in rows],
                "start": [r.start for r in rows],
                "end": [r.end for r in rows],
                "duration_s": [
                    None if r.end is None else (r.end - r.start).total_seconds() for r in rows
                ],
                "severity": [r.severity for r in rows],
                "status": [r.status for r in rows],
                "needs_review": [r.needs_review for r in rows],
                "withdrawn_at": [r.withdrawn_at for r in rows],
                "first_found_at": [r.first_found_at for r in rows],
                "evaluated_at": [r.evaluated_at for r in rows],
                "evidence_fix_ids": [list(r.evidence_fixes) for r in rows],
                "evidence_event_ids": [list(r.evidence_events) for r in rows],
                "evidence_fix_id": first,
                "evidence_at": [None if p is None else p.t_ms for p in seen],
                "evidence_lat": [None if p is None else p.lat for p in seen],
                "evidence_lon": [None if p is None else p.lon for p in seen],
                "evidence_accuracy_m": [None if p is None else p.accuracy_m for p in seen],
            },
            schema=VIOLATIONS,
        )


# Alert columns read as stored (the rest: the id and the person's pseudonym).
_ALERT_AS_STORED = [name for name in ALERTS.names if name not in ("alert_id", "person")]


def _alert_batches(
    session: Session, window: DayWindow, names: Pseudonyms, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    for rows in repository.alerts(session, window, chunk_rows):
        columns: dict[str, Any] = {
            "alert_id": [r.id for r in rows],
            "person": [names.person(r.person_ref) for r in rows],
        }
        columns.update({name: [getattr(r, name) for r in rows] for name in _ALERT_AS_STORED})
        yield pa.RecordBatch.from_pydict(columns, schema=ALERTS)


class _AllocationPeople:
    """The person's pseudonym for each allocation id, looked up once per export."""

    def __init__(self, session: Session, names: Pseudonyms) -> None:
        self._session = session
        self._names = names
        self._known: dict[int, str | None] = {}

    def of(self, allocation_ids: Sequence[int | None]) -> list[str | None]:
        missing = {a for a in allocation_ids if a is not None and a not in self._known}
        if missing:
            refs = repository.person_refs_of_allocations(self._session, missing)
            self._known.update({a: self._names.person(refs.get(a)) for a in missing})
        return [None if a is None else self._known[a] for a in allocation_ids]


TABLES: tuple[ExportTable, ...] = (
    ExportTable("fixes", FIXES, "observed_at", _fix_batches),
    ExportTable("events", EVENTS, "observed_at", _event_batches),
    ExportTable("violations", VIOLATIONS, "start", _violation_batches),
    ExportTable("alerts", ALERTS, "event_at", _alert_batches),
)
