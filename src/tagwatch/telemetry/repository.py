"""All telemetry SQL. The read interface at the top is what other domains code against."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Device
from tagwatch.telemetry import recent
from tagwatch.telemetry.allocations import NONE
from tagwatch.telemetry.columns import EVENT_STAGING, FIX_STAGING, STAGING_TABLES, Records
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.models import DeviceEvent as DeviceEventRow
from tagwatch.telemetry.models import (
    GpsFix,
    IngestBatch,
    QuarantinedRecord,
)
from tagwatch.telemetry.plausibility import TrackPoint

_FETCH_ROWS = 250_000
_IDS_PER_QUERY = 500
# Allocations per query: their parameters stay below SQLite's old 999-parameter limit.
_PARAMETERS_PER_QUERY = 800


# --- the read interface ------------------------------------------------------------------


@dataclass
class FixTable:
    """Accepted (plausible, attached) GPS fixes as columns, sorted by (allocation_id, t_ms).

    `t_ms` is epoch milliseconds, UTC; `lat`/`lon` WGS84 degrees; `record_id` the fix's id.
    """

    record_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    allocation_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    t_ms: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    lat: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    lon: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    accuracy_m: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.record_id.shape[0])


@dataclass(frozen=True)
class DeviceEvent:
    """A non-GPS record (rf, alcohol, status, checkin) attached to an allocation."""

    record_id: int
    allocation_id: int
    type: str
    t: dt.datetime
    received: dt.datetime
    fields: dict[str, Any]


@dataclass(frozen=True)
class UnallocatedDevice:
    """Records held for a device with no allocation covering their time."""

    device_serial: str
    fixes: int
    events: int
    first_t: dt.datetime
    last_t: dt.datetime

    @property
    def records(self) -> int:
        return self.fixes + self.events


def load_fixes(
    session: Session,
    *,
    start: dt.datetime,
    end: dt.datetime,
    allocation_ids: Sequence[int] | None = None,
) -> FixTable:
    """Accepted fixes observed in [start, end], of the given allocations (all when None)."""
    low, high = to_ms(start), to_ms(end)
    ids = None if allocation_ids is None else sorted({int(a) for a in allocation_ids})
    if session.connection().dialect.name == "postgresql":
        columns = _packed_fixes(session, low, high, ids)
    else:
        columns = _select_fixes(session, low, high, ids)
    if columns[0].shape[0] == 0:
        return FixTable()
    # Sorting here is cheaper than in the database, which would spill to disk for a big window.
    return _sorted_fixes(*columns)


_FIX_COLUMNS_SQL = "id, allocation_id, t_ms, lat, lon, accuracy_m"
_ACCEPTED_SQL = "implausible_reason IS NULL AND allocation_id IS NOT NULL"
_FixColumns = tuple[
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
]
# A bytea value is at most 1 GiB: a slice of 6 hours keeps a column under 200 MiB even at
# 1,000 fixes a second.
_PG_SLICE_MS = 6 * 3600 * 1000


def _packed_fixes(session: Session, low: int, high: int, ids: list[int] | None) -> _FixColumns:
    """PostgreSQL packs each column into one bytea of big-endian 8-byte values (int8send,
    float8send): a handful of values cross the wire, not millions of rows, and NumPy reads
    them as they are. The aggregates of one query see its rows in the same order."""
    where = "t_ms >= %s AND t_ms <= %s AND " + _ACCEPTED_SQL
    if ids is not None:
        where += " AND allocation_id = ANY(%s)"
    packed = ", ".join(
        f"string_agg({'float8send' if name in ('lat', 'lon', 'accuracy_m') else 'int8send'}"
        f"({name}), ''::bytea)"
        for name in _FIX_COLUMNS_SQL.split(", ")
    )
    statement = f"SELECT {packed} FROM gps_fix WHERE {where}"
    dbapi: Any = session.connection().connection.dbapi_connection
    parts: list[list[Any]] = [[] for _ in range(6)]
    with dbapi.cursor(binary=True) as cursor:
        # Slice only the span that holds fixes (two index look-ups), not the whole window.
        cursor.execute(
            "SELECT min(t_ms), max(t_ms) FROM gps_fix WHERE t_ms >= %s AND t_ms <= %s",
            [low, high],
        )
        span = cursor.fetchone()
        if span is not None and span[0] is not None:
            low, high = span
        else:
            high = low - 1
        for first in range(low, high + 1, _PG_SLICE_MS):
            params: list[Any] = [first, min(first + _PG_SLICE_MS - 1, high)]
            if ids is not None:
                params.append(ids)
            cursor.execute(statement, params)
            row = cursor.fetchone()
            if row is None or row[0] is None:  # no fixes in this slice
                continue
            for index, blob in enumerate(row):
                kind = ">f8" if index >= 3 else ">i8"
                parts[index].append(np.frombuffer(blob, dtype=kind))

    def column(index: int, kind: type[np.int64] | type[np.float64]) -> Any:
        if not parts[index]:
            return np.empty(0, dtype=kind)
        return np.concatenate(parts[index]).astype(kind)

    return (
        column(0, np.int64),
        column(1, np.int64),
        column(2, np.int64),
        column(3, np.float64),
        column(4, np.float64),
        column(5, np.float64),
    )


def _select_fixes(session: Session, low: int, high: int, ids: list[int] | None) -> _FixColumns:
    sql = (
        f"SELECT {_FIX_COLUMNS_SQL} FROM gps_fix WHERE t_ms >= ? AND t_ms <= ? AND {_ACCEPTED_SQL}"
    )
    if ids is None:
        chunks = list(_fetch_numeric(session, sql, [low, high]))
    else:
        chunks = []
        for offset in range(0, len(ids), _IDS_PER_QUERY):
            part = ids[offset : offset + _IDS_PER_QUERY]
            query = sql + " AND allocation_id IN (" + ", ".join(["?"] * len(part)) + ")"
            chunks.extend(_fetch_numeric(session, query, [low, high, *part]))
    table = np.concatenate(chunks) if chunks else np.empty((0, 6))
    return (
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2].astype(np.int64),
        np.ascontiguousarray(table[:, 3]),
        np.ascontiguousarray(table[:, 4]),
        np.ascontiguousarray(table[:, 5]),
    )


def load_events(
    session: Session,
    *,
    allocation_id: int,
    start: dt.datetime,
    end: dt.datetime,
    types: Collection[str] | None = None,
) -> list[DeviceEvent]:
    """The allocation's non-GPS records observed in [start, end], in time order."""
    row = DeviceEventRow
    query = select(
        row.id, row.allocation_id, row.type, row.t_ms, row.received_ms, row.payload
    ).where(
        row.allocation_id == allocation_id,
        row.t_ms >= to_ms(start),
        row.t_ms <= to_ms(end),
    )
    if types is not None:
        query = query.where(row.type.in_(sorted(types)))
    query = query.order_by(row.t_ms, row.id)
    return [
        DeviceEvent(
            record_id=record_id,
            allocation_id=alloc,
            type=kind,
            t=from_ms(t_ms),
            received=from_ms(received_ms),
            fields=dict(payload),
        )
        for record_id, alloc, kind, t_ms, received_ms, payload in session.execute(query)
    ]


class EventRow(NamedTuple):
    """A non-GPS record as the evaluation reads it: time in epoch milliseconds."""

    record_id: int
    allocation_id: int
    type: str
    t_ms: int
    fields: dict[str, Any]


class PayloadField(NamedTuple):
    """A field of one record type's payload read as a column. With `codes`, each listed value
    is read as its code, any other value as -1 and no value as `missing`; without, the field
    is a number (NaN when absent). Records of other types read `missing` (or NaN)."""

    type: str
    name: str
    codes: Mapping[str | bool, int] | None = None
    missing: int = -1


@dataclass
class EventTable:
    """Non-GPS records as columns, sorted by (allocation_id, t_ms, record_id): `type` is the
    index of the record's type in the types asked for (-1: another), `fields` one column per
    payload field asked for, by name."""

    record_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    allocation_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    t_ms: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    type: NDArray[np.int8] = field(default_factory=lambda: np.empty(0, np.int8))
    fields: dict[str, NDArray[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.record_id.shape[0])


def load_fixes_from(session: Session, starts: Mapping[int, int], end_ms: int) -> FixTable:
    """Accepted fixes of each allocation observed from its own start (epoch ms) to `end_ms`,
    sorted by (allocation, time, id), in one query per few hundred allocations (each an
    index range on (allocation, time)). Those this transaction stored come from memory
    (`recent`) where the database proves that complete."""
    held = recent.held(session)
    if held is None:
        return load_stored_fixes_from(session, starts, end_ms)
    split = _held_from(session, held, starts, end_ms)
    # From the database: each allocation's fixes before those held.
    spans = {a: (t, split.get(a, end_ms + 1) - 1) for a, t in starts.items()}
    stored = _stored_fixes(session, spans)
    if not split:
        return stored
    owners = np.array(sorted(split), np.int64)
    slot = np.minimum(np.searchsorted(owners, held.allocation_id), len(owners) - 1)
    moments = np.array([split[a] for a in owners.tolist()], np.int64)[slot]
    # Each held fix from its allocation's moment on (none of an allocation not proved).
    from_moment = (owners[slot] == held.allocation_id) & (held.t_ms >= moments)
    mine = held.take(held.accepted & from_moment & (held.t_ms <= end_ms))
    return _sorted_fixes(
        np.concatenate([stored.record_id, mine.record_id]),
        np.concatenate([stored.allocation_id, mine.allocation_id]),
        np.concatenate([stored.t_ms, mine.t_ms]),
        np.concatenate([stored.lat, mine.lat]),
        np.concatenate([stored.lon, mine.lon]),
        np.concatenate([stored.accuracy_m, mine.accuracy_m]),
    )


def load_stored_fixes_from(session: Session, starts: Mapping[int, int], end_ms: int) -> FixTable:
    """`load_fixes_from`, all read from the database."""
    return _stored_fixes(session, {a: (t, end_ms) for a, t in starts.items()})


def _held_from(
    session: Session, held: recent.Columns, starts: Mapping[int, int], end_ms: int
) -> dict[int, int]:
    """Per allocation whose fixes from some moment on are all held in memory: that moment
    (its earliest fix held, or its start if later). Proved by the database: the allocation
    has as many fixes there (whatever their verdict) with the same sum of ids. Every fix
    held is stored with that allocation (see `recent`), so any other fix in the span (from
    an earlier transaction, an attachment) makes the counts differ."""
    firsts = np.flatnonzero(np.r_[True, held.allocation_id[1:] != held.allocation_id[:-1]])
    lasts = np.r_[firsts[1:], len(held.allocation_id)]
    claims: dict[int, tuple[int, int, int]] = {}  # allocation -> (from, count, id sum)
    for low, high in zip(firsts.tolist(), lasts.tolist(), strict=True):
        allocation_id = int(held.allocation_id[low])
        start = starts.get(allocation_id)
        if start is None:
            continue
        t = held.t_ms[low:high]
        moment = max(start, int(t[0]))
        inside = (t >= moment) & (t <= end_ms)
        count = int(np.count_nonzero(inside))
        if count:
            total = int(held.record_id[low:high][inside].sum())
            claims[allocation_id] = (moment, count, total)
    if not claims:
        return {}
    sql = (
        "SELECT w.a, count(f.id), sum(f.id) FROM w"
        " JOIN gps_fix f ON f.allocation_id = w.a AND f.t_ms >= w.t AND f.t_ms <= {p}"
        " GROUP BY w.a"
    )
    proved: dict[int, int] = {}
    moments = {a: moment for a, (moment, _, _) in claims.items()}
    for rows in _per_allocation(session, sql, moments, [end_ms]):
        for allocation_id, count, total in rows:
            moment, held_count, held_total = claims[int(allocation_id)]
            if int(count) == held_count and int(total) == held_total:
                proved[int(allocation_id)] = moment
    return proved


def _stored_fixes(session: Session, spans: Mapping[int, tuple[int, int]]) -> FixTable:
    """Accepted fixes of each allocation observed in its span (epoch ms, both included)."""
    sql = (
        "SELECT f.id, f.allocation_id, f.t_ms, f.lat, f.lon, f.accuracy_m FROM w"
        " JOIN gps_fix f ON f.allocation_id = w.a AND f.t_ms >= w.t AND f.t_ms <= w.e"
        " WHERE f.implausible_reason IS NULL"
    )
    blocks = [
        np.fromiter(chain.from_iterable(rows), np.float64, len(rows) * 6).reshape(-1, 6)
        for rows in _per_allocation(session, sql, spans)
        if rows
    ]
    if not blocks:
        return FixTable()
    table = np.concatenate(blocks)
    return _sorted_fixes(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2].astype(np.int64),
        table[:, 3],
        table[:, 4],
        table[:, 5],
    )


def _sorted_fixes(
    record_id: NDArray[np.int64],
    allocation: NDArray[np.int64],
    t_ms: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    accuracy_m: NDArray[np.float64],
) -> FixTable:
    order = np.lexsort((record_id, t_ms, allocation))
    # Indexing with `order` copies: each column comes out contiguous.
    return FixTable(
        record_id=record_id[order],
        allocation_id=allocation[order],
        t_ms=t_ms[order],
        lat=lat[order],
        lon=lon[order],
        accuracy_m=accuracy_m[order],
    )


def load_events_from(
    session: Session,
    starts: Mapping[int, int],
    end_ms: int,
    types: Sequence[str],
    fields: Sequence[PayloadField],
) -> EventTable:
    """Each allocation's non-GPS records observed from its own start to `end_ms`, as columns:
    the payload fields are read in the database (`->>`), so no payload is decoded here, and
    the type and every coded field come packed in one integer, a few values a row to fetch."""
    postgres = session.connection().dialect.name == "postgresql"
    coded = [f for f in fields if f.codes is not None]
    numbers = [f for f in fields if f.codes is None]
    if len(coded) >= _PACKED_CODES:
        raise ValueError(f"at most {_PACKED_CODES - 1} coded fields")
    kind = " ".join(f"WHEN {_literal(t)} THEN {i}" for i, t in enumerate(types))
    packed = [f"CASE e.type {kind} ELSE -1 END", *(_coded_sql(f, postgres) for f in coded)]
    columns = [
        " + ".join(f"(({code}) + 1) * {_CODE_BASE**i}" for i, code in enumerate(packed)),
        *(_number_sql(f, postgres) for f in numbers),
    ]
    sql = (
        f"SELECT e.id, e.allocation_id, e.t_ms, {', '.join(columns)} FROM w"
        " JOIN device_event e ON e.allocation_id = w.a AND e.t_ms >= w.t AND e.t_ms <= {p}"
    )
    width = 3 + len(columns)
    # Absent numbers arrive as NULL: NumPy reads None as NaN in a float array.
    blocks = [
        np.array(rows, np.float64).reshape(-1, width)
        for rows in _per_allocation(session, sql, starts, [end_ms])
        if rows
    ]
    table = np.concatenate(blocks) if blocks else np.empty((0, width), np.float64)
    record_id = table[:, 0].astype(np.int64)
    allocation = table[:, 1].astype(np.int64)
    t_ms = table[:, 2].astype(np.int64)
    order = np.lexsort((record_id, t_ms, allocation))
    table = table[order]
    codes = table[:, 3].astype(np.int64)

    def unpacked(position: int) -> NDArray[np.int8]:
        column: NDArray[np.int8] = ((codes // _CODE_BASE**position) % _CODE_BASE - 1).astype(
            np.int8
        )
        return column

    found: dict[str, NDArray[Any]] = {f.name: unpacked(1 + i) for i, f in enumerate(coded)}
    found.update({f.name: table[:, 4 + i] for i, f in enumerate(numbers)})
    return EventTable(
        record_id=record_id[order],
        allocation_id=allocation[order],
        t_ms=t_ms[order],
        type=unpacked(0),
        fields={f.name: found[f.name] for f in fields},
    )


# Codes from -1 to 14 packed in base 16: 13 of them (the type and 12 fields) stay exact in
# the float64 a row is read into.
_CODE_BASE = 16
_PACKED_CODES = 13


def _coded_sql(spec: PayloadField, postgres: bool) -> str:
    """A coded payload field as an expression (see `PayloadField`)."""
    codes = spec.codes or {}
    if not -1 <= min([spec.missing, *codes.values()]) <= max([spec.missing, *codes.values()]) < 15:
        raise ValueError(f"codes of {spec.name} out of range")
    raw = _value_sql(spec)
    compared = raw
    if codes and all(isinstance(v, bool) for v in codes):
        # Booleans compared by their JSON type, so no number or string passes for one.
        if postgres:
            compared = (
                f"CASE WHEN jsonb_typeof(e.payload -> '{spec.name}') = 'boolean' THEN {raw} END"
            )
        else:
            compared = f"json_type(e.payload, '$.{spec.name}')"
    coded = " ".join(f"WHEN {_literal(v)} THEN {c}" for v, c in codes.items())
    return (
        f"CASE WHEN e.type <> {_literal(spec.type)} THEN {spec.missing}"
        f" ELSE CASE {compared} {coded}"
        f" ELSE CASE WHEN {raw} IS NULL THEN {spec.missing} ELSE -1 END END END"
    )


def _number_sql(spec: PayloadField, postgres: bool) -> str:
    """A number field as an expression: NULL unless the value is a JSON number (a stored
    payload of another shape reads as absent rather than failing the evaluation)."""
    value = _value_sql(spec)
    if postgres:
        is_number = f"jsonb_typeof(e.payload -> '{spec.name}') = 'number'"
        number = f"CAST({value} AS DOUBLE PRECISION)"
    else:
        is_number = f"json_type(e.payload, '$.{spec.name}') IN ('integer', 'real')"
        number = value
    kind = _literal(spec.type)
    return f"CASE WHEN e.type = {kind} AND {is_number} THEN {number} END"


def _value_sql(spec: PayloadField) -> str:
    if not spec.name.replace("_", "").isalnum():
        raise ValueError(f"not a plain payload field name: {spec.name!r}")
    return f"(e.payload ->> '{spec.name}')"


def _literal(value: str | bool) -> str:
    """A payload value as compared: text, and JSON booleans as `true` or `false`."""
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain payload value: {value!r}")
    return f"'{value}'"


def events_by_id(session: Session, record_ids: Collection[int]) -> list[EventRow]:
    """Non-GPS records by id (attached ones only)."""
    ids = sorted({int(i) for i in record_ids})
    rows: list[EventRow] = []
    row = DeviceEventRow
    for offset in range(0, len(ids), _IDS_PER_QUERY):
        query = select(row.id, row.allocation_id, row.type, row.t_ms, row.payload).where(
            row.id.in_(ids[offset : offset + _IDS_PER_QUERY]), row.allocation_id.is_not(None)
        )
        rows.extend(
            EventRow(record_id, int(allocation_id), kind, t_ms, dict(payload))
            for record_id, allocation_id, kind, t_ms, payload in session.execute(query)
        )
    return rows


def _per_allocation(
    session: Session,
    sql: str,
    moments: Mapping[int, int] | Mapping[int, tuple[int, int]],
    extra: Sequence[Any] = (),
) -> Iterator[list[tuple[Any, ...]]]:
    """Run `sql`, which reads a relation `w(a, t)` of (allocation id, epoch ms) pairs, or
    `w(a, t, e)` where each allocation has (start, end), and writes `{p}` for each of its
    `extra` parameters, on the DBAPI cursor; yield its rows a few hundred allocations at a
    time."""
    rows = sorted((int(a), *((v,) if isinstance(v, int) else v)) for a, v in moments.items())
    width = len(rows[0]) if rows else 2
    names = "a, t" if width == 2 else "a, t, e"
    with _raw_cursor(session) as (cursor, postgres):
        step = _PARAMETERS_PER_QUERY // width
        for offset in range(0, len(rows), step):
            part = rows[offset : offset + step]
            if postgres:
                arrays = ", ".join(["%s::bigint[]"] * width)
                head = f"WITH w({names}) AS (SELECT * FROM unnest({arrays}))"
                params: list[Any] = [[row[i] for row in part] for i in range(width)]
                body = sql.format(p="%s")
            else:
                marks = "(" + ", ".join("?" * width) + ")"
                head = f"WITH w({names}) AS (VALUES " + ", ".join([marks] * len(part)) + ")"
                params = [value for row in part for value in row]
                body = sql.format(p="?")
            cursor.execute(f"{head} {body}", [*params, *extra])
            yield cursor.fetchall()


def first_record_ms(session: Session, allocation_ids: Collection[int]) -> dict[int, int]:
    """Per allocation with any record: the observed time of its first one (epoch ms)."""
    sql = (
        "SELECT w.a, (SELECT MIN(f.t_ms) FROM gps_fix f WHERE f.allocation_id = w.a),"
        " (SELECT MIN(e.t_ms) FROM device_event e WHERE e.allocation_id = w.a) FROM w"
    )
    found: dict[int, int] = {}
    for rows in _per_allocation(session, sql, {a: 0 for a in allocation_ids}):
        for allocation_id, fix_ms, event_ms in rows:
            first = min((int(v) for v in (fix_ms, event_ms) if v is not None), default=None)
            if first is not None:
                found[int(allocation_id)] = first
    return found


@dataclass(frozen=True)
class RecordsBefore:
    """What an allocation's records say before a moment (epoch ms; None when nothing)."""

    any_ms: int | None  # the latest record of any kind (an implausible fix included)
    fix_ms: int | None  # the latest accepted fix
    rf_id: int | None = None  # the latest rf record, when asked for


def records_before(
    session: Session, moments: Mapping[int, int], *, rf: bool = False
) -> dict[int, RecordsBefore]:
    """Per allocation: its latest records observed strictly before its own moment."""
    rf_sql = (
        ", (SELECT r.id FROM device_event r WHERE r.allocation_id = w.a AND r.type = 'rf'"
        " AND r.t_ms < w.t ORDER BY r.t_ms DESC, r.id DESC LIMIT 1)"
        if rf
        else ", NULL"
    )
    # Each subquery is one index range on (allocation_id, t_ms), read from its top end.
    sql = (
        "SELECT w.a,"
        " (SELECT MAX(f.t_ms) FROM gps_fix f WHERE f.allocation_id = w.a AND f.t_ms < w.t),"
        " (SELECT MAX(e.t_ms) FROM device_event e WHERE e.allocation_id = w.a AND e.t_ms < w.t),"
        " (SELECT g.t_ms FROM gps_fix g WHERE g.allocation_id = w.a AND g.t_ms < w.t"
        "  AND g.implausible_reason IS NULL ORDER BY g.t_ms DESC LIMIT 1)"
        f"{rf_sql} FROM w"
    )
    found: dict[int, RecordsBefore] = {}
    for rows in _per_allocation(session, sql, moments):
        for allocation_id, fix_ms, event_ms, plausible_ms, rf_id in rows:
            latest = max((int(v) for v in (fix_ms, event_ms) if v is not None), default=None)
            found[int(allocation_id)] = RecordsBefore(
                latest,
                None if plausible_ms is None else int(plausible_ms),
                None if rf_id is None else int(rf_id),
            )
    return found


def last_record_times(
    session: Session, allocation_ids: Collection[int]
) -> dict[int, tuple[dt.datetime | None, dt.datetime | None]]:
    """Per allocation: (latest observed time of any record, latest plausible GPS fix).

    Any record counts towards the first (an implausible fix still shows the device talks);
    only plausible fixes count towards the second (a fix at 0,0 is no location).
    """
    ids = sorted({int(a) for a in allocation_ids})
    answer: dict[int, tuple[dt.datetime | None, dt.datetime | None]] = {}
    for offset in range(0, len(ids), _IDS_PER_QUERY):
        part = ids[offset : offset + _IDS_PER_QUERY]
        params = {f"a{i}": value for i, value in enumerate(part)}
        rows_sql = ", ".join(f"(:a{i})" for i in range(len(part)))
        # Each scalar subquery is one index seek on (allocation_id, t_ms), on both backends.
        sql = text(
            f"WITH ids(allocation_id) AS (VALUES {rows_sql}) SELECT ids.allocation_id,"
            " (SELECT MAX(f.t_ms) FROM gps_fix f WHERE f.allocation_id = ids.allocation_id),"
            " (SELECT MAX(e.t_ms) FROM device_event e"
            "   WHERE e.allocation_id = ids.allocation_id),"
            " (SELECT g.t_ms FROM gps_fix g WHERE g.allocation_id = ids.allocation_id"
            "   AND g.implausible_reason IS NULL ORDER BY g.t_ms DESC LIMIT 1)"
            " FROM ids"
        )
        for alloc, fix_ms, event_ms, plausible_ms in session.execute(sql, params):
            latest = max((v for v in (fix_ms, event_ms) if v is not None), default=None)
            answer[int(alloc)] = (
                None if latest is None else from_ms(int(latest)),
                None if plausible_ms is None else from_ms(int(plausible_ms)),
            )
    return answer


def unallocated_summary(session: Session) -> list[UnallocatedDevice]:
    """Devices with records that no allocation covers yet, most recent first."""
    per_device: dict[str, list[int]] = {}
    for model, slot in ((GpsFix, 0), (DeviceEventRow, 1)):
        query = (
            select(
                model.device_serial,
                func.count(),
                func.min(model.t_ms),
                func.max(model.t_ms),
            )
            .where(model.allocation_id.is_(None))
            .group_by(model.device_serial)
        )
        for serial, count, first_ms, last_ms in session.execute(query):
            entry = per_device.setdefault(serial, [0, 0, first_ms, last_ms])
            entry[slot] += count
            entry[2] = min(entry[2], first_ms)
            entry[3] = max(entry[3], last_ms)
    summary = [
        UnallocatedDevice(
            device_serial=serial,
            fixes=fixes,
            events=events,
            first_t=from_ms(first_ms),
            last_t=from_ms(last_ms),
        )
        for serial, (fixes, events, first_ms, last_ms) in per_device.items()
    ]
    summary.sort(key=lambda item: (item.last_t, item.device_serial), reverse=True)
    return summary


# --- raw cursor helpers --------------------------------------------------------------------


def _fetch_numeric(
    session: Session, sql: str, params: Sequence[Any]
) -> Iterator[NDArray[np.float64]]:
    """Run `sql` (qmark parameters) on the DBAPI cursor; yield its all-numeric rows as 2-D
    float64 blocks, bypassing SQLAlchemy's row objects. Integer columns survive float64
    exactly below 2**53 (ids and epoch milliseconds do)."""
    with _raw_cursor(session) as (cursor, _postgres):
        cursor.execute(sql, tuple(params))
        while rows := cursor.fetchmany(_FETCH_ROWS):
            flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * 6)
            yield flat.reshape(-1, 6)


@contextmanager
def _raw_cursor(session: Session) -> Iterator[tuple[Any, bool]]:
    """A DBAPI cursor on the session's connection, closed after, and whether the database is
    PostgreSQL: the hot paths run on it, without SQLAlchemy's statements and rows."""
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        yield cursor, connection.dialect.name == "postgresql"
    finally:
        cursor.close()


# --- the write path ------------------------------------------------------------------------

# The columns a record is inserted with: those staged (`columns`) and those found while storing.
FIX_COLUMNS = (*FIX_STAGING[1:], "allocation_id", "implausible_reason", "batch_id")
EVENT_COLUMNS = (*EVENT_STAGING[1:], "allocation_id", "batch_id")
_SQLITE_CACHE_KIB = 262_144  # index pages of a large store stay in memory while loading
_KEYS_PER_QUERY = 900  # below SQLite's old 999-parameter limit
_KEYS_PER_ARRAY = 50_000  # PostgreSQL takes the keys as one array parameter


@dataclass(frozen=True)
class TrackState:
    max_t_ms: int
    last: TrackPoint | None


@dataclass(frozen=True)
class ChainRow:
    point: TrackPoint
    allocation_id: int | None
    reason: str | None


def tune_for_bulk(session: Session) -> None:
    """A larger page cache for this connection: index inserts stop thrashing on SQLite."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")


def insert_batch(session: Session, *, channel: str, origin: str, received_at: dt.datetime) -> int:
    # On the table, not the ORM entity: a plain INSERT .. RETURNING compiles in a fraction.
    batches: Any = IngestBatch.__table__
    statement = (
        insert(batches)
        .values(channel=channel, origin=origin[:300], received_at=received_at)
        .returning(batches.c.id)
    )
    return int(session.execute(statement).scalar_one())


def finish_batch(session: Session, batch_id: int, counts: dict[str, int]) -> None:
    batches: Any = IngestBatch.__table__
    session.execute(update(batches).where(batches.c.id == batch_id).values(**counts))


def insert_quarantined(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Quarantine rejected records; their ids in the order given."""
    if not rows:
        return []
    statement = insert(QuarantinedRecord).returning(
        QuarantinedRecord.id, sort_by_parameter_order=True
    )
    return [int(row_id) for row_id in session.execute(statement, rows).scalars()]


def stages_images(session: Session) -> bool:
    """Whether the store takes a batch's staging rows as a SQLite image (`stage_image`).
    Asks the bind: taking a connection would begin the transaction (on SQLite, with the write
    lock) before the batch is even prepared."""
    return bool(session.get_bind().dialect.name == "sqlite")


def stage_image(session: Session, image: bytes) -> None:
    """SQLite: load a batch's staging tables (`columns.staging_image`) into the connection's
    `tw_incoming` schema, an attached in-memory database: one memory copy for the batch."""
    fairy: Any = session.connection().connection
    dbapi: Any = fairy.dbapi_connection
    if not fairy.info.get(_STAGING_SCHEMA):
        dbapi.execute(f"ATTACH DATABASE ':memory:' AS {_STAGING_SCHEMA}")
        fairy.info[_STAGING_SCHEMA] = True
    dbapi.deserialize(image, name=_STAGING_SCHEMA)


class StagedInsert(NamedTuple):
    """Which staged records were stored new (None: all of them), and the id each was given
    if stored, by position (None where the insert does not tell)."""

    new: NDArray[np.bool_] | None
    record_id: NDArray[np.int64] | None


def insert_staged(
    session: Session,
    table_name: str,
    records: Records,
    allocation_id: NDArray[np.int64],
    reasons: Mapping[int, str],
    *,
    batch_id: int,
    now_ms: int,
) -> StagedInsert:
    """Insert the table's staged records (insert-or-ignore on the dedupe key, and a sequenced
    record whose key the other record table holds is a duplicate too), with their derived
    columns: the allocation of each (NONE for none) and the implausibility of some, by
    position. Runs on the DBAPI cursor, in one statement over the staged rows: this is the
    hot path."""
    if table_name not in _TABLES:
        raise ValueError(f"not a record table: {table_name}")
    n = len(records)
    if n == 0:
        return StagedInsert(None, np.empty(0, np.int64))
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        new = _insert_staged_postgresql(
            session, dbapi, table_name, records, allocation_id.tolist(), reasons, batch_id, now_ms
        )
        return StagedInsert(new, None)
    cursor = dbapi.cursor()
    try:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS tw_derived"
            " (pos INTEGER PRIMARY KEY, allocation_id INTEGER, reason TEXT)"
        )
        cursor.execute("DELETE FROM temp.tw_derived")
        cursor.execute(
            "INSERT INTO temp.tw_derived (pos, allocation_id)"
            f" SELECT key, NULLIF(value, {NONE}) FROM json_each(?)",
            (orjson.dumps(np.ascontiguousarray(allocation_id), option=orjson.OPT_SERIALIZE_NUMPY),),
        )
        if reasons:
            cursor.executemany(
                "UPDATE temp.tw_derived SET reason = ? WHERE pos = ?",
                [(reason, pos) for pos, reason in reasons.items()],
            )
        cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM main.{table_name}")
        first_id = int(cursor.fetchone()[0])
        # Each row's id is first_id + its position, so the positions stored new read back.
        cursor.execute(
            _STAGED_SQLITE[table_name],
            {"first_id": first_id, "now_ms": now_ms, "batch_id": batch_id},
        )
        record_id = first_id + np.arange(n, dtype=np.int64)
        if cursor.rowcount == n:
            return StagedInsert(None, record_id)
        cursor.execute(f"SELECT id - ? FROM main.{table_name} WHERE id >= ?", (first_id, first_id))
        stored = np.zeros(n, dtype=bool)
        stored[np.fromiter((row[0] for row in cursor.fetchall()), np.int64)] = True
        return StagedInsert(stored, record_id)
    finally:
        cursor.close()


def _insert_staged_postgresql(
    session: Session,
    dbapi: Any,
    table_name: str,
    records: Records,
    owners: list[int],
    reasons: Mapping[int, str],
    batch_id: int,
    now_ms: int,
) -> NDArray[np.bool_] | None:
    """COPY the staged rows into a temporary table, then insert-or-ignore from it in one
    statement joined with the derived columns (several times faster than row by row)."""
    if records.rows is None:
        raise ValueError("the batch was prepared as a SQLite image: prepare it with image=False")
    staging = STAGING_TABLES[table_name]
    incoming = f"tw_incoming_{table_name}"
    with dbapi.cursor() as cursor:
        # Created from a query, it has the columns' types but none of their constraints.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} ON COMMIT DELETE ROWS AS"
            f" SELECT 0::bigint AS pos, {', '.join(staging[1:])} FROM {table_name}"
            " WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {incoming}")
        with cursor.copy(f"COPY {incoming} ({', '.join(staging)}) FROM STDIN") as copy:
            for row in records.rows:
                copy.write_row(row)
        cursor.execute(
            _STAGED_POSTGRESQL[table_name],
            {
                "owners": owners,
                "reason_pos": list(reasons),
                "reasons": list(reasons.values()),
                "now_ms": now_ms,
                "batch_id": batch_id,
            },
        )
        inserted = int(cursor.rowcount)
    if inserted == len(records):
        return None
    present = keys_present(session, table_name, records.keys)
    return np.array([present.get(key) == batch_id for key in records.keys], dtype=bool)


_STAGING_SCHEMA = "tw_incoming"
_OTHER_TABLE = {"gps_fix": "device_event", "device_event": "gps_fix"}


def _staged_select(table_name: str, value: dict[str, str]) -> tuple[list[str], list[str]]:
    """The insert's target columns and, for each, what the SELECT gives it: the staged
    column `s.<name>` unless `value` says otherwise."""
    targets = list(FIX_COLUMNS if table_name == "gps_fix" else EVENT_COLUMNS)
    return targets, [value.get(name, f"s.{name}") for name in targets]


def _staged_sql(dialect_name: str, table_name: str) -> str:
    other = _OTHER_TABLE[table_name]
    if dialect_name == "postgresql":
        source = (
            f"tw_incoming_{table_name} s"
            " JOIN unnest(%(owners)s::bigint[]) WITH ORDINALITY AS d(allocation_id, n)"
            " ON d.n = s.pos + 1"
            " LEFT JOIN unnest(%(reason_pos)s::bigint[], %(reasons)s::text[]) AS r(pos, reason)"
            " ON r.pos = s.pos"
        )
        value = {
            "allocation_id": f"NULLIF(d.allocation_id, {NONE})",
            "implausible_reason": "r.reason",
            "received_ms": "coalesce(s.received_ms, %(now_ms)s)",
            "batch_id": "%(batch_id)s",
        }
        targets, values = _staged_select(table_name, value)
        target, other_table = table_name, other
    else:
        source = f"{_STAGING_SCHEMA}.{table_name} s JOIN temp.tw_derived d ON d.pos = s.pos"
        value = {
            "allocation_id": "d.allocation_id",
            "implausible_reason": "d.reason",
            "received_ms": "coalesce(s.received_ms, :now_ms)",
            "batch_id": ":batch_id",
        }
        targets, values = _staged_select(table_name, value)
        targets, values = ["id", *targets], [":first_id + s.pos", *values]
        target, other_table = f"main.{table_name}", f"main.{other}"
    return (
        f"INSERT INTO {target} ({', '.join(targets)}) SELECT {', '.join(values)} FROM {source}"
        f" WHERE s.seq IS NULL OR NOT EXISTS"
        f" (SELECT 1 FROM {other_table} o WHERE o.dedupe_key = s.dedupe_key)"
        " ON CONFLICT (dedupe_key) DO NOTHING"
    )


_STAGED_SQLITE = {name: _staged_sql("sqlite", name) for name in _OTHER_TABLE}
_STAGED_POSTGRESQL = {name: _staged_sql("postgresql", name) for name in _OTHER_TABLE}


def keys_present(session: Session, table_name: str, keys: Sequence[str]) -> dict[str, int | None]:
    """For those of `keys` stored in the table: key -> the batch that stored it. Runs on the
    DBAPI cursor (a batch can ask about tens of thousands of keys)."""
    if table_name not in _TABLES:
        raise ValueError(f"not a record table: {table_name}")
    found: dict[str, int | None] = {}
    with _raw_cursor(session) as (cursor, postgres):
        if postgres:
            for offset in range(0, len(keys), _KEYS_PER_ARRAY):
                part = list(keys[offset : offset + _KEYS_PER_ARRAY])
                cursor.execute(
                    f"SELECT dedupe_key, batch_id FROM {table_name} WHERE dedupe_key = ANY(%s)",
                    [part],
                )
                found.update(cursor.fetchall())
        else:
            for offset in range(0, len(keys), _KEYS_PER_QUERY):
                some = keys[offset : offset + _KEYS_PER_QUERY]
                marks = ", ".join(["?"] * len(some))
                cursor.execute(
                    f"SELECT dedupe_key, batch_id FROM {table_name} WHERE dedupe_key IN ({marks})",
                    tuple(some),
                )
                found.update(cursor.fetchall())
    return found


def lock_tracks(session: Session, serials: Collection[str]) -> dict[str, TrackState]:
    """The speed-chain state of each device, locked for this transaction (PostgreSQL; SQLite
    holds the database write lock already). Devices lock in serial order: no deadlocks.
    Runs on the DBAPI cursor: a batch touches hundreds of devices."""
    ordered = sorted(set(serials))
    if not ordered:
        return {}
    columns = "device_serial, max_t_ms, last_key, last_t_ms, last_lat, last_lon"
    states: dict[str, TrackState] = {}
    with _raw_cursor(session) as (cursor, postgres):
        if postgres:
            cursor.execute(
                "INSERT INTO device_track (device_serial, max_t_ms)"
                " SELECT serial, %s FROM unnest(%s::text[]) AS u(serial) ORDER BY serial"
                " ON CONFLICT (device_serial) DO NOTHING",
                [NO_TIME, ordered],
            )
            cursor.execute(
                f"SELECT {columns} FROM device_track WHERE device_serial = ANY(%s)"
                " ORDER BY device_serial FOR UPDATE",
                [ordered],
            )
            rows = cursor.fetchall()
        else:
            cursor.executemany(
                "INSERT INTO device_track (device_serial, max_t_ms) VALUES (?, ?)"
                " ON CONFLICT (device_serial) DO NOTHING",
                [(serial, NO_TIME) for serial in ordered],
            )
            rows = []
            for offset in range(0, len(ordered), _KEYS_PER_QUERY):
                part = ordered[offset : offset + _KEYS_PER_QUERY]
                marks = ", ".join("?" * len(part))
                cursor.execute(
                    f"SELECT {columns} FROM device_track WHERE device_serial IN ({marks})", part
                )
                rows.extend(cursor.fetchall())
    for serial, max_t, key, t_ms, lat, lon in rows:
        last = None
        if key is not None and t_ms is not None and lat is not None and lon is not None:
            last = TrackPoint(t_ms, key, lat, lon)
        states[serial] = TrackState(max_t_ms=max_t, last=last)
    return states


NO_TIME = -(2**62)  # a device's `max_t_ms` before its first fix


def save_tracks(session: Session, states: dict[str, TrackState]) -> None:
    rows = [
        (
            state.max_t_ms,
            state.last.key if state.last else None,
            state.last.t_ms if state.last else None,
            state.last.lat if state.last else None,
            state.last.lon if state.last else None,
            serial,
        )
        for serial, state in states.items()
    ]
    if not rows:
        return
    with _raw_cursor(session) as (cursor, postgres):
        mark = "%s" if postgres else "?"
        cursor.executemany(
            f"UPDATE device_track SET max_t_ms = {mark}, last_key = {mark}, last_t_ms = {mark},"
            f" last_lat = {mark}, last_lon = {mark} WHERE device_serial = {mark}",
            rows,
        )


_IN_CHAIN = or_(GpsFix.implausible_reason.is_(None), GpsFix.implausible_reason.like("speed:%"))


def chain_context(
    session: Session, serial: str, from_t_ms: int
) -> tuple[TrackPoint | None, list[ChainRow]]:
    """A device's latest plausible fix before `from_t_ms`, and every fix in its speed chain
    from `from_t_ms` on (with its allocation and current verdict)."""
    fix = GpsFix
    before = session.execute(
        select(fix.dedupe_key, fix.t_ms, fix.lat, fix.lon)
        .where(
            fix.device_serial == serial,
            fix.t_ms <= from_t_ms,
            fix.implausible_reason.is_(None),
        )
        .order_by(fix.t_ms.desc())
        .limit(1)
    ).first()
    # Fixes at exactly `from_t_ms` are ordered by key in Python, so they come back as part of
    # the chain and the starting point is the latest plausible fix strictly before.
    if before is not None and before.t_ms == from_t_ms:
        before = session.execute(
            select(fix.dedupe_key, fix.t_ms, fix.lat, fix.lon)
            .where(
                fix.device_serial == serial,
                fix.t_ms < from_t_ms,
                fix.implausible_reason.is_(None),
            )
            .order_by(fix.t_ms.desc())
            .limit(1)
        ).first()
    start = (
        None
        if before is None
        else TrackPoint(before.t_ms, before.dedupe_key, before.lat, before.lon)
    )
    rows = session.execute(
        select(
            fix.dedupe_key, fix.t_ms, fix.lat, fix.lon, fix.allocation_id, fix.implausible_reason
        ).where(fix.device_serial == serial, fix.t_ms >= from_t_ms, _IN_CHAIN)
    ).all()
    chain = [
        ChainRow(TrackPoint(t_ms, key, lat, lon), allocation, reason)
        for key, t_ms, lat, lon, allocation, reason in rows
    ]
    chain.sort(key=lambda row: row.point)
    return start, chain


def set_verdicts(session: Session, verdicts: list[tuple[str | None, str]]) -> None:
    """(reason or None, dedupe_key) pairs: the derived plausibility of stored fixes."""
    if verdicts:
        statement = (
            update(GpsFix)
            .where(GpsFix.dedupe_key == bindparam("key"))
            .values(implausible_reason=bindparam("reason"))
        )
        session.connection().execute(
            statement, [{"reason": reason, "key": key} for reason, key in verdicts]
        )


_TABLES: dict[str, Any] = {
    "gps_fix": GpsFix.__table__,
    "device_event": DeviceEventRow.__table__,
}


# --- allocations ---------------------------------------------------------------------------


def allocation_spans(
    session: Session, serials: Collection[str]
) -> list[tuple[str, int, int, int | None]]:
    """(serial, allocation id, fitted ms, removed ms or None) for the devices' allocations."""
    # On the tables: the ingest path needs no ORM entities (nor their configuration).
    allocations: Any = Allocation.__table__
    devices: Any = Device.__table__
    ordered = sorted(set(serials))
    spans: list[tuple[str, int, int, int | None]] = []
    for offset in range(0, len(ordered), _KEYS_PER_QUERY):
        part = ordered[offset : offset + _KEYS_PER_QUERY]
        query = (
            select(
                devices.c.serial,
                allocations.c.id,
                allocations.c.fitted_at,
                allocations.c.removed_at,
            )
            .join_from(allocations, devices, allocations.c.device_id == devices.c.id)
            .where(devices.c.serial.in_(part))
        )
        spans.extend(
            (serial, int(allocation_id), to_ms(fitted), None if removed is None else to_ms(removed))
            for serial, allocation_id, fitted, removed in session.execute(query)
        )
    return spans


def attach_to_allocation(
    session: Session, *, serial: str, allocation_id: int, fitted_ms: int, removed_ms: int | None
) -> tuple[int, int] | None:
    """Give the allocation the device's records in [fitted, removed) that have none, and take
    back any it holds outside that span (a removal recorded later). The (min, max) observed
    time of the records that changed, or None when nothing did."""
    recent.forget(session)  # fixes held in memory may change allocation
    touched: list[tuple[int | None, int | None]] = []
    for model in (GpsFix, DeviceEventRow):
        inside = [model.device_serial == serial, model.t_ms >= fitted_ms]
        if removed_ms is not None:
            inside.append(model.t_ms < removed_ms)
        touched.append(_span_of(session, model, [*inside, model.allocation_id.is_(None)]))
        session.execute(
            update(model)
            .where(*inside, model.allocation_id.is_(None))
            .values(allocation_id=allocation_id)
        )
        outside = [model.allocation_id == allocation_id, model.device_serial == serial]
        beyond = model.t_ms < fitted_ms
        if removed_ms is not None:
            beyond = or_(beyond, model.t_ms >= removed_ms)
        touched.append(_span_of(session, model, [*outside, beyond]))
        session.execute(update(model).where(*outside, beyond).values(allocation_id=None))
    lows = [low for low, _high in touched if low is not None]
    highs = [high for _low, high in touched if high is not None]
    if not lows:
        return None
    return min(lows), max(highs)


def _span_of(session: Session, model: Any, conditions: list[Any]) -> tuple[int | None, int | None]:
    low, high = session.execute(
        select(func.min(model.t_ms), func.max(model.t_ms)).where(*conditions)
    ).one()
    return low, high


# --- quarantine ----------------------------------------------------------------------------

_REPLAY_CHUNK = 2_000


def list_quarantined(
    session: Session,
    *,
    status: str | None = "quarantined",
    limit: int = 100,
    before_id: int | None = None,
) -> list[QuarantinedRecord]:
    """Quarantined records, newest first (page with `before_id`)."""
    query = select(QuarantinedRecord).order_by(QuarantinedRecord.id.desc()).limit(limit)
    if status is not None:
        query = query.where(QuarantinedRecord.status == status)
    if before_id is not None:
        query = query.where(QuarantinedRecord.id < before_id)
    return list(session.scalars(query))


def get_quarantined(session: Session, quarantine_id: int) -> QuarantinedRecord | None:
    return session.get(QuarantinedRecord, quarantine_id)


def quarantined_for_replay(
    session: Session, ids: list[int] | None
) -> Iterator[list[QuarantinedRecord]]:
    """Still-quarantined records (the given ones, or all) in id order, in chunks."""
    after = 0
    while True:
        query = (
            select(QuarantinedRecord)
            .where(QuarantinedRecord.status == "quarantined", QuarantinedRecord.id > after)
            .order_by(QuarantinedRecord.id)
            .limit(_REPLAY_CHUNK)
        )
        if ids is not None:
            query = query.where(QuarantinedRecord.id.in_(ids))
        rows = list(session.scalars(query))
        if not rows:
            return
        yield rows
        after = rows[-1].id


def mark_replayed(
    session: Session,
    *,
    released: dict[int, str],
    still_rejected: dict[int, Any],
    corrections: dict[int, str],
    at: dt.datetime,
) -> None:
    """Record a replay's outcome: released records name the key they were stored under."""
    for quarantine_id, key in released.items():
        session.execute(
            update(QuarantinedRecord)
            .where(QuarantinedRecord.id == quarantine_id)
            .values(
                status="released",
                released_key=key,
                last_replayed_at=at,
                replay_count=QuarantinedRecord.replay_count + 1,
                corrected_text=corrections.get(quarantine_id, QuarantinedRecord.corrected_text),
            )
        )
    for quarantine_id, errors in still_rejected.items():
        session.execute(
            update(QuarantinedRecord)
            .where(QuarantinedRecord.id == quarantine_id, QuarantinedRecord.status == "quarantined")
            .values(
                errors=[{"field": e.field, "reason": e.reason} for e in errors],
                last_replayed_at=at,
                replay_count=QuarantinedRecord.replay_count + 1,
                corrected_text=corrections.get(quarantine_id, QuarantinedRecord.corrected_text),
            )
        )
