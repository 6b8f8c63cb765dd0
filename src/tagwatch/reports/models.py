"""Daily data quality snapshots, so that trends can be shown."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tagwatch.db.base import Base, BigId, utcnow


class DqSnapshot(Base):
    """One rule's score for one delivery unit on one day."""

    __tablename__ = "dq_snapshot"
    __table_args__ = (UniqueConstraint("day", "rule_id", "delivery_unit_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    rule_id: Mapped[str] = mapped_column(String(20))
    delivery_unit_code: Mapped[str] = mapped_column(String(40), index=True)
    checked: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
