"""Location data requests and the files that answer them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from tagwatch.db.base import Base, BigId, utcnow


class RequestStatus:
    PENDING = "pending"
    REFUSED = "refused"
    APPROVED = "approved"  # approved and fulfilled: the two happen in one transaction
    EXPIRED = "expired"


class DataRequest(Base):
    """One person's locations over one period, asked for with a purpose and a lawful basis."""

    __tablename__ = "data_request"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    requester_username: Mapped[str] = mapped_column(String(120), index=True)
    requester_name: Mapped[str] = mapped_column(String(200))
    requester_force_code: Mapped[str | None] = mapped_column(String(20), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    person_ref: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    purpose: Mapped[str] = mapped_column(Text)
    lawful_basis: Mapped[str] = mapped_column(String(40))
    crime_reference: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), index=True, default=RequestStatus.PENDING)
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    fulfilled_at: Mapped[dt.datetime | None]
    first_downloaded_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    expired_at: Mapped[dt.datetime | None]
    fix_count: Mapped[int | None] = mapped_column(Integer)

    files: Mapped[list[DataRequestFile]] = relationship(
        back_populates="request", order_by="DataRequestFile.id", cascade="all, delete-orphan"
    )


class DataRequestFile(Base):
    """One export of an approved request. The bytes are kept in the database, so they commit
    or roll back with the approval; expiry clears them and keeps the hash as the record."""

    __tablename__ = "data_request_file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("data_request.id", ondelete="CASCADE"), index=True
    )
    format: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(80))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]

    request: Mapped[DataRequest] = relationship(back_populates="files")
