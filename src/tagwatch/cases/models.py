"""The case record: people, their addresses, orders, conditions, devices and allocations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
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


class Person(Base):
    """One person, one record: identifiers are unique across people."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    date_of_birth: Mapped[dt.date] = mapped_column(Date, index=True)
    sex: Mapped[str] = mapped_column(String(30))
    gender: Mapped[str] = mapped_column(String(30))
    ethnicity: Mapped[str] = mapped_column(String(4))
    disability: Mapped[str] = mapped_column(String(30))
    nationality: Mapped[str] = mapped_column(String(20))
    religion: Mapped[str] = mapped_column(String(30))
    language: Mapped[str] = mapped_column(String(8))
    interpreter_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    crn: Mapped[str | None] = mapped_column(String(7), unique=True)
    pnc: Mapped[str | None] = mapped_column(String(16), unique=True)
    nomis: Mapped[str | None] = mapped_column(String(7), unique=True)
    prison_number: Mapped[str | None] = mapped_column(String(6), unique=True)
    home_office_ref: Mapped[str | None] = mapped_column(String(16), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    names: Mapped[list[PersonName]] = relationship(
        back_populates="person", order_by="PersonName.id", cascade="all, delete-orphan"
    )
    addresses: Mapped[list[Address]] = relationship(
        back_populates="person", order_by="Address.id", cascade="all, delete-orphan"
    )
    orders: Mapped[list[Order]] = relationship(
        back_populates="person", order_by="Order.id", cascade="all, delete-orphan"
    )

    @property
    def primary_name(self) -> PersonName | None:
        return next((n for n in self.names if n.kind == "primary"), None)


class PersonName(Base):
    """A primary name or an alias; `normalised` folds case, accents and punctuation for search."""

    __tablename__ = "person_name"
    # Covers a caseload's listing (`repository.people_in_scope`): each person's primary name
    # from the index alone, with no look-up of the row.
    __table_args__ = (Index("ix_person_name_listing", "person_id", "kind", "given", "family"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    given: Mapped[str] = mapped_column(String(120))
    family: Mapped[str] = mapped_column(String(120))
    middle: Mapped[str | None] = mapped_column(String(120))
    # "given family" folded; family alone is indexed separately for surname searches.
    normalised: Mapped[str] = mapped_column(String(250), index=True)
    normalised_family: Mapped[str] = mapped_column(String(120), index=True)

    person: Mapped[Person] = relationship(back_populates="names")


class Address(Base):
    __tablename__ = "address"
    __table_args__ = (UniqueConstraint("person_id", "ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str] = mapped_column(String(40))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    town: Mapped[str] = mapped_column(String(120))
    postcode: Mapped[str] = mapped_column(String(8))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)

    person: Mapped[Person] = relationship(back_populates="addresses")
    safeguarding_checks: Mapped[list[SafeguardingCheck]] = relationship(
        back_populates="address", order_by="SafeguardingCheck.id", cascade="all, delete-orphan"
    )


class Order(Base):
    __tablename__ = "monitoring_order"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(30), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(20))
    notifying_org_kind: Mapped[str] = mapped_column(String(20))
    notifying_org_name: Mapped[str] = mapped_column(String(200))
    responsible_org_kind: Mapped[str] = mapped_column(String(20))
    responsible_org_name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(20), index=True)
    delivery_unit_code: Mapped[str] = mapped_column(String(40), index=True)
    responsible_officer: Mapped[str] = mapped_column(String(120), index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    fitting_deadline: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]

    person: Mapped[Person] = relationship(back_populates="orders")
    conditions: Mapped[list[Condition]] = relationship(
        back_populates="order", order_by="Condition.id", cascade="all, delete-orphan"
    )
    allocations: Mapped[list[Allocation]] = relationship(
        back_populates="order", order_by="Allocation.id", cascade="all, delete-orphan"
    )
    versions: Mapped[list[OrderVersion]] = relationship(
        back_populates="order", order_by="OrderVersion.version", cascade="all, delete-orphan"
    )


class OrderVersion(Base):
    """One change to an order: who, when, why, what (readable), and the order as it then was."""

    __tablename__ = "order_version"
    __table_args__ = (UniqueConstraint("order_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_order.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    order: Mapped[Order] = relationship(back_populates="versions")


class Condition(Base):
    __tablename__ = "order_condition"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_order.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(30), index=True)
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime | None]
    address_id: Mapped[int | None] = mapped_column(ForeignKey("address.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timetable: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    schedule: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    release_day: Mapped[dict[str, str] | None] = mapped_column(JSON)
    appointments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    order: Mapped[Order] = relationship(back_populates="conditions")
    address: Mapped[Address | None] = relationship()


class SafeguardingCheck(Base):
    """A domestic abuse or child safeguarding check of a curfew address."""

    __tablename__ = "safeguarding_check"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address_id: Mapped[int] = mapped_column(
        ForeignKey("address.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    checked_by: Mapped[str] = mapped_column(String(120))
    checked_at: Mapped[dt.datetime]
    outcome: Mapped[str] = mapped_column(String(30))

    address: Mapped[Address] = relationship(back_populates="safeguarding_checks")


class Device(Base):
    __tablename__ = "device"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    serial: Mapped[str] = mapped_column(String(60), unique=True)
    type: Mapped[str] = mapped_column(String(30))
    model: Mapped[str] = mapped_column(String(120))
    batch: Mapped[str] = mapped_column(String(120))

    allocations: Mapped[list[Allocation]] = relationship(
        back_populates="device", order_by="Allocation.fitted_at"
    )


class Allocation(Base):
    """A device on a person's order from fitting to removal; compliance is per allocation."""

    __tablename__ = "allocation"
    __table_args__ = (Index("ix_allocation_device_fitted", "device_id", "fitted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), index=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_order.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    fitted_at: Mapped[dt.datetime]
    removed_at: Mapped[dt.datetime | None]
    # When tagwatch learned of the allocation: an order imported from a legacy system was
    # watched by that system before this moment, so compliance does not judge it without data.
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    device: Mapped[Device] = relationship(back_populates="allocations")
    order: Mapped[Order] = relationship(back_populates="allocations")
    person: Mapped[Person] = relationship()


class ReferenceValue(Base):
    """Administrator-maintained code lists (regions, delivery units, forces, ...), one table."""

    __tablename__ = "reference_value"
    __table_args__ = (UniqueConstraint("kind", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
