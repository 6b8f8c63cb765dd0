"""Violations (derived, reproducible) and the authorised absences and zone suspensions that
excuse periods.

A violation is keyed by (allocation, rule, condition, start): re-evaluating the same records
finds the same key, so evaluation upserts instead of adding. A violation that a later
evaluation no longer finds (a late fix shows the person was home) is withdrawn, not deleted,
so alerts raised on it keep their subject.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tagwatch.db.base import Base, BigId, utcnow


class Violation(Base):
    __tablename__ = "violation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    allocation_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    person_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The condition broken (curfew, zone), 0 when the rule concerns the device.
    condition_key: Mapped[int] = mapped_column(BigInteger, default=0)
    rule_id: Mapped[str] = mapped_column(String(60))
    rule_version: Mapped[str] = mapped_column(String(20))
    rule_set_version: Mapped[str] = mapped_column(String(20))
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime | None]
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))  # possible, confirmed
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # The raw records behind the finding: gps_fix ids and device_event ids.
    evidence_fixes: Mapped[list[int]] = mapped_column(JSON)
    evidence_events: Mapped[list[int]] = mapped_column(JSON)
    withdrawn_at: Mapped[dt.datetime | None]
    first_found_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    evaluated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("allocation_id", "rule_id", "condition_key", "start"),
        Index("ix_violation_allocation_start", "allocation_id", "start"),
    )

    @property
    def condition_id(self) -> int | None:
        return self.condition_key or None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


class AuthorisedAbsence(Base):
    """A time-boxed permission to be away from the curfew address."""

    __tablename__ = "authorised_absence"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, index=True)
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(120))


class ZoneSuspension(Base):
    """A time-boxed suspension of one exclusion or inclusion zone condition."""

    __tablename__ = "zone_suspension"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, index=True)
    condition_id: Mapped[int] = mapped_column(BigInteger)
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(120))
