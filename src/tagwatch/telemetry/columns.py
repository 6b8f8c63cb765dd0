"""A batch made ready to store: parsed items sorted into rejected records and, per table, the
first record of each dedupe key as columns.

Pure and picklable, so the file channel prepares the next chunk in a separate process while
the current one is being stored. The rows to insert travel as a staging table: on SQLite a
whole in-memory database (`image`, one memory copy to load into the storing connection, no
per-row work there); on PostgreSQL as row tuples for `COPY`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from tagwatch.telemetry.feed import Event, Fix, Parsed

# The staging tables' columns; `pos` is the record's place in its table's columns.
FIX_STAGING: Final = (
    "pos",
    "dedupe_key",
    "device_serial",
    "t_ms",
    "received_ms",
    "seq",
    "lat",
    "lon",
    "accuracy_m",
    "source",
    "extras",
)
EVENT_STAGING: Final = (
    "pos",
    "dedupe_key",
    "device_serial",
    "type",
    "t_ms",
    "received_ms",
    "seq",
    "payload",
)
STAGING_TABLES: Final = {"gps_fix": FIX_STAGING, "device_event": EVENT_STAGING}


class Item(NamedTuple):
    """One record as received: where it was (line number or array index), its raw text
    (kept only if it is rejected) and what parsing made of it."""

    position: int
    raw: str | bytes
    parsed: Parsed
    csv_header: str | None = None


def _no_ints() -> NDArray[np.int64]:
    return np.empty(0, np.int64)


def _no_floats() -> NDArray[np.float64]:
    return np.empty(0, np.float64)


@dataclass
class Records:
    """One table's records of a batch, in arrival order. `device` holds each record's index
    into `serials`; `lat`/`lon`/`accuracy_m` are zeros for events; `rows` are the staging
    rows (in FIX_STAGING or EVENT_STAGING order) unless they travel in the batch's image."""

    keys: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    device: NDArray[np.int64] = field(default_factory=_no_ints)
    t_ms: NDArray[np.int64] = field(default_factory=_no_ints)
    lat: NDArray[np.float64] = field(default_factory=_no_floats)
    lon: NDArray[np.float64] = field(default_factory=_no_floats)
    accuracy_m: NDArray[np.float64] = field(default_factory=_no_floats)
    rows: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class Prepared:
    """What a batch holds: how many records, which were rejected, and the records to store
    (repeats within the batch already dropped)."""

    received: int = 0
    rejected: list[Item] = field(default_factory=list)
    fixes: Records = field(default_factory=Records)
    events: Records = field(default_factory=Records)
    image: bytes | None = None  # a SQLite database holding both staging tables


def prepare(items: Sequence[Item], *, image: bool) -> Prepared:
    """Sort parsed items into rejected ones and the first of each key per table; with
    `image`, the staging rows are packed into a SQLite database image instead of tuples."""
    fixes: dict[str, Fix] = {}
    events: dict[str, Event] = {}
    rejected: list[Item] = []
    received = 0
    for item in items:
        received += 1
        parsed = item.parsed
        kind = type(parsed)
        if kind is Fix:
            seq = parsed.seq  # type: ignore[union-attr]
            key = (
                f"{parsed.device}|{seq}"  # type: ignore[union-attr]
                if seq is not None
                else f"{parsed.device}|gps|{parsed.t_ms}"  # type: ignore[union-attr]
            )
            if key not in fixes:
                fixes[key] = parsed  # type: ignore[assignment]
        elif kind is Event:
            key = parsed.dedupe_key  # type: ignore[union-attr]
            if key not in events:
                events[key] = parsed  # type: ignore[assignment]
        else:
            rejected.append(item)
    if fixes.keys() & events.keys():
        _first_sent_wins(items, fixes, events)
    prepared = Prepared(
        received=received,
        rejected=rejected,
        fixes=_fix_records(fixes),
        events=_event_records(events),
    )
    if image:
        prepared.image = staging_image(prepared.fixes.rows or [], prepared.events.rows or [])
        prepared.fixes.rows = prepared.events.rows = None
    return prepared


def _first_sent_wins(
    items: Sequence[Item], fixes: dict[str, Fix], events: dict[str, Event]
) -> None:
    """One sequence number sent as a fix and as an event: the first one sent counts."""
    both = fixes.keys() & events.keys()
    first_fix: dict[str, bool] = {}
    for item in items:
        parsed = item.parsed
        if not isinstance(parsed, list) and parsed.dedupe_key in both:
            first_fix.setdefault(parsed.dedupe_key, isinstance(parsed, Fix))
    for key, fix_first in first_fix.items():
        del (events if fix_first else fixes)[key]


def _codes(devices: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
    index: dict[str, int] = {}
    codes = [index.setdefault(device, len(index)) for device in devices]
    return list(index), np.array(codes, dtype=np.int64)


def _fix_records(fixes: dict[str, Fix]) -> Records:
    if not fixes:
        return Records(rows=[])
    keys = list(fixes)
    n = len(keys)
    devices, t_ms, seqs, received, lats, lons, accuracies, sources, extras = zip(
        *fixes.values(), strict=True
    )
    serials, device = _codes(devices)
    rows = list(
        zip(
            range(n),
            keys,
            devices,
            t_ms,
            received,
            seqs,
            lats,
            lons,
            accuracies,
            sources,
            [None if e is None else orjson.dumps(e).decode() for e in extras],
            strict=True,
        )
    )
    return Records(
        keys=keys,
        serials=serials,
        device=device,
        t_ms=np.fromiter(t_ms, np.int64, n),
        lat=np.fromiter(lats, np.float64, n),
        lon=np.fromiter(lons, np.float64, n),
        accuracy_m=np.fromiter(accuracies, np.float64, n),
        rows=rows,
    )


def _event_records(events: dict[str, Event]) -> Records:
    if not events:
        return Records(rows=[])
    keys = list(events)
    n = len(keys)
    devices, types, t_ms, seqs, received, payloads = zip(*events.values(), strict=True)
    serials, device = _codes(devices)
    rows = list(
        zip(
            range(n),
            keys,
            devices,
            types,
            t_ms,
            received,
            seqs,
            [orjson.dumps(p if type(p) is dict else dict(p)).decode() for p in payloads],
            strict=True,
        )
    )
    zeros = np.zeros(n, np.float64)
    return Records(
        keys=keys,
        serials=serials,
        device=device,
        t_ms=np.fromiter(t_ms, np.int64, n),
        lat=zeros,
        lon=zeros,
        accuracy_m=zeros,
        rows=rows,
    )


def staging_image(fix_rows: list[tuple[Any, ...]], event_rows: list[tuple[Any, ...]]) -> bytes:
    """A SQLite database holding the staging tables `gps_fix` and `device_event`, as bytes."""
    database = sqlite3.connect(":memory:")
    try:
        # Every image has the same schema at the same pages (tables first, rows after): the
        # storing connection loads image after image into one schema it has read already.
        for table, columns in STAGING_TABLES.items():
            # `pos` is the rowid: the storing side reads the rows by it.
            database.execute(
                f"CREATE TABLE {table} (pos INTEGER PRIMARY KEY, {', '.join(columns[1:])})"
            )
        for table, rows in (("gps_fix", fix_rows), ("device_event", event_rows)):
            marks = ", ".join("?" * len(STAGING_TABLES[table]))
            database.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        database.commit()
        return database.serialize()
    finally:
        database.close()
