"""Crime batches from police forces, crimes and their versions, match runs and matches."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tagwatch.db.base import Base, BigId, utcnow


class CrimeBatch(Base):
    """One received file: what it was, how it parsed, and its row errors."""

    __tablename__ = "crime_batch"
    __table_args__ = (Index("ix_crime_batch_force_received", "force_code", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    force_code: Mapped[str | None] = mapped_column(String(40))
    batch_ref: Mapped[str | None] = mapped_column(String(40), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    received_by: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(12))  # successful, partial, error, failed
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    accepted_rows: Mapped[int] = mapped_column(Integer, default=0)
    failed_rows: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_rows: Mapped[int] = mapped_column(Integer, default=0)
    header_skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    file_errors: Mapped[list[str]] = mapped_column(JSON, default=list)

    errors: Mapped[list[CrimeBatchError]] = relationship(
        back_populates="batch", order_by="CrimeBatchError.id", cascade="all, delete-orphan"
    )


class CrimeBatchError(Base):
    __tablename__ = "crime_batch_error"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("crime_batch.id", ondelete="CASCADE"), index=True
    )
    row: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text, default="")
    crime_reference: Mapped[str] = mapped_column(String(100), default="")

    batch: Mapped[CrimeBatch] = relationship(back_populates="errors")


class Crime(Base):
    """A crime as the force identifies it: (force, crime reference)."""

    __tablename__ = "crime"
    __table_args__ = (UniqueConstraint("force_code", "crime_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    force_code: Mapped[str] = mapped_column(String(40))
    crime_ref: Mapped[str] = mapped_column(String(100), index=True)

    versions: Mapped[list[CrimeVersion]] = relationship(
        back_populates="crime", order_by="CrimeVersion.id"
    )


class CrimeVersion(Base):
    """The crime as one batch gave it. A re-send with no change is marked a duplicate."""

    __tablename__ = "crime_version"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    crime_id: Mapped[int] = mapped_column(ForeignKey("crime.id"), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("crime_batch.id"), index=True)
    row: Mapped[int] = mapped_column(Integer)
    version_no: Mapped[int] = mapped_column(Integer)  # goes up only when something changed
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    crime_type: Mapped[str] = mapped_column(String(10))
    crime_type_description: Mapped[str] = mapped_column(Text, default="")
    t_from: Mapped[dt.datetime]
    t_to: Mapped[dt.datetime]
    easting: Mapped[float] = mapped_column(Float)
    northing: Mapped[float] = mapped_column(Float)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    location_source: Mapped[str] = mapped_column(String(8))
    free_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    crime: Mapped[Crime] = relationship(back_populates="versions")


class CrimeMatchRun(Base):
    """One run of the matcher over a batch, with everything needed to repeat it."""

    __tablename__ = "crime_match_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("crime_batch.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(10))  # auto, manual
    status: Mapped[str] = mapped_column(String(10))  # success, failure
    algorithm_version: Mapped[str] = mapped_column(String(60))
    radius_m: Mapped[float] = mapped_column(Float)
    tolerance_s: Mapped[float] = mapped_column(Float)
    max_gap_s: Mapped[float] = mapped_column(Float)
    # Raw telemetry is append-only: fixes with ids up to this are the run's snapshot.
    max_record_id: Mapped[int] = mapped_column(Integer, default=0)
    fixes_considered: Mapped[int] = mapped_column(Integer, default=0)
    crimes_considered: Mapped[int] = mapped_column(Integer, default=0)
    match_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]


class CrimeMatch(Base):
    """A person whose track came within the radius of a crime, in one run."""

    __tablename__ = "crime_match"
    __table_args__ = (UniqueConstraint("run_id", "crime_version_id", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crime_match_run.id"), index=True)
    crime_version_id: Mapped[int] = mapped_column(ForeignKey("crime_version.id"), index=True)
    person_id: Mapped[int] = mapped_column(BigId, index=True)
    person_ref: Mapped[str] = mapped_column(String(20))
    allocation_id: Mapped[int] = mapped_column(BigId)
    device_serial: Mapped[str] = mapped_column(String(60))
    closest_distance_m: Mapped[float] = mapped_column(Float)
    closest_time: Mapped[dt.datetime]
    closest_latitude: Mapped[float] = mapped_column(Float)
    closest_longitude: Mapped[float] = mapped_column(Float)
    first_time_in_radius: Mapped[dt.datetime]
    last_time_in_radius: Mapped[dt.datetime]
    fixes_in_radius: Mapped[int] = mapped_column(Integer)
    passes: Mapped[int] = mapped_column(Integer)
    coverage_pct: Mapped[float] = mapped_column(Float)
    max_accuracy_m: Mapped[float | None] = mapped_column(Float)
    review_state: Mapped[str] = mapped_column(String(12), default="unreviewed")
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(120))
    reviewed_at: Mapped[dt.datetime | None]
    authorised_by: Mapped[str | None] = mapped_column(String(120))
    authorised_at: Mapped[dt.datetime | None]

    positions: Mapped[list[CrimeMatchPosition]] = relationship(
        back_populates="match", order_by="CrimeMatchPosition.id", cascade="all, delete-orphan"
    )


class CrimeMatchPosition(Base):
    """A fix inside the radius, with its pass/sequence label (A1, A2, B1, ...)."""

    __tablename__ = "crime_match_position"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    match_id: Mapped[int] = mapped_column(
        ForeignKey("crime_match.id", ondelete="CASCADE"), index=True
    )
    record_id: Mapped[int] = mapped_column(BigId)
    label: Mapped[str] = mapped_column(String(12))
    t: Mapped[dt.datetime]
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)

    match: Mapped[CrimeMatch] = relationship(back_populates="positions")


class TrackHourBox(Base):
    """Where a device's fixes lay during one hour and the reach after it (derived).

    The bounding box, in metres on the national grid, of the device's stored fixes observed
    from `hour_ms` to the end of the hour plus `track_boxes.REACH_MS`: every track segment
    that starts in the hour lies inside it, so a crime finds the few devices that could have
    passed it without reading their fixes (`crime/track_boxes.py`)."""

    __tablename__ = "track_hour_box"
    __table_args__ = (Index("ix_track_hour_box_hour", "hour_ms"),)

    device_serial: Mapped[str] = mapped_column(String(60), primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    min_x: Mapped[float] = mapped_column(Float)
    min_y: Mapped[float] = mapped_column(Float)
    max_x: Mapped[float] = mapped_column(Float)
    max_y: Mapped[float] = mapped_column(Float)


class TrackBoxState(Base):
    """How far the track boxes reach into the fix store: one row (derived)."""

    __tablename__ = "track_box_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Every stored fix with an id up to this is in the boxes; later ones are read directly.
    max_record_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # PostgreSQL: the ids handed out by the last refresh, and the transactions then writing;
    # once those have ended, every fix up to that id is either visible or never will be.
    pending_record_id: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_xids: Mapped[list[str]] = mapped_column(JSON, default=list)
