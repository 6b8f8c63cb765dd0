"""Telemetry tables: the raw record store (append-only), quarantine and ingest receipts.

Times of observation and receipt are stored as `t_ms` / `received_ms`: BIGINT milliseconds
since the Unix epoch, UTC. Integers keep the hot tables narrow, sort and compare fast on both
backends, and load straight into NumPy arrays.

The raw columns of `gps_fix` and `device_event` are never edited. Two columns are derived
and may change: `allocation_id` (set when an allocation covering the record is recorded,
possibly later) and `implausible_reason` (re-judged when a late fix arrives next to it).
`batch_id` names the receipt (`ingest_batch`) that delivered the record. Each record's
`dedupe_key` is unique across retransmissions (feed format v1): `{device}|{seq}` when the
record has a sequence number, else `{device}|{type}|{t_ms}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tagwatch.db.base import Base, BigId, utcnow

# JSONB on PostgreSQL (indexable, compact); JSON text on SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

SERIAL_LENGTH = 60  # as the case record's device serial
KEY_LENGTH = 100


class GpsFix(Base):
    """One GPS fix as the device sent it, plus its derived allocation and plausibility."""

    __tablename__ = "gps_fix"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    device_serial: Mapped[str] = mapped_column(String(SERIAL_LENGTH))
    allocation_id: Mapped[int | None] = mapped_column(BigInteger)
    t_ms: Mapped[int] = mapped_column(BigInteger)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    accuracy_m: Mapped[float] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(8))
    extras: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    implausible_reason: Mapped[str | None] = mapped_column(String(200))
    batch_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_gps_fix_allocation_t", "allocation_id", "t_ms"),
        Index("ix_gps_fix_t", "t_ms"),
        Index("ix_gps_fix_device_t", "device_serial", "t_ms"),
    )


class DeviceEvent(Base):
    """One non-GPS record (rf, alcohol, status, checkin) with its type-specific fields."""

    __tablename__ = "device_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    device_serial: Mapped[str] = mapped_column(String(SERIAL_LENGTH))
    allocation_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(8))
    t_ms: Mapped[int] = mapped_column(BigInteger)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    batch_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_device_event_allocation_t", "allocation_id", "t_ms"),
        Index("ix_device_event_device_t", "device_serial", "t_ms"),
    )


class DeviceTrack(Base):
    """Per device: the latest plausible fix and the latest fix time stored (derived).

    Lets an in-order batch be judged for speed without reading the fix table; a batch that
    reaches back before `max_t_ms` re-reads the device's neighbouring fixes instead.
    """

    __tablename__ = "device_track"

    device_serial: Mapped[str] = mapped_column(String(SERIAL_LENGTH), primary_key=True)
    max_t_ms: Mapped[int] = mapped_column(BigInteger)
    last_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    last_t_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_lat: Mapped[float | None] = mapped_column(Double)
    last_lon: Mapped[float | None] = mapped_column(Double)


class QuarantinedRecord(Base):
    """A record that failed validation: its raw text and every error, kept until replayed."""

    __tablename__ = "quarantined_record"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    channel: Mapped[str] = mapped_column(String(8))
    origin: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int | None] = mapped_column(Integer)
    raw_text: Mapped[str] = mapped_column(Text)
    # The header line when the record is a row of the GPS CSV form (needed to re-read it).
    csv_header: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[dict[str, str]]] = mapped_column(JsonDoc)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # quarantined -> released (a replay passed validation and entered the pipeline)
    status: Mapped[str] = mapped_column(String(12), default="quarantined", index=True)
    corrected_text: Mapped[str | None] = mapped_column(Text)
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    last_replayed_at: Mapped[dt.datetime | None] = mapped_column()
    released_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))


class IngestBatch(Base):
    """The receipt of one call on any channel, with the counts it was answered with."""

    __tablename__ = "ingest_batch"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    origin: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    received: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    unallocated: Mapped[int] = mapped_column(Integer, default=0)
    implausible: Mapped[int] = mapped_column(Integer, default=0)
