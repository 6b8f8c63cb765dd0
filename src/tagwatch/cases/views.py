"""A person's case file as plain rows, for pages that only show it.

Loading the ORM objects (identity map, relationship collections) costs more than reading the
rows; a page that shows and never changes the record reads these instead. Attributes have the
models' names, so templates and helpers read either alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NameView:
    kind: str
    given: str
    family: str


@dataclass(frozen=True, slots=True)
class SafeguardingCheckView:
    kind: str
    outcome: str
    checked_by: str
    checked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AddressView:
    id: int
    line1: str
    town: str
    postcode: str
    lat: float
    lon: float
    safeguarding_checks: tuple[SafeguardingCheckView, ...] = ()


@dataclass(frozen=True, slots=True)
class PersonView:
    id: int
    ref: str
    date_of_birth: dt.date
    crn: str | None
    pnc: str | None
    nomis: str | None
    sex: str
    gender: str
    nationality: str
    language: str
    interpreter_needed: bool
    names: tuple[NameView, ...]
    addresses: tuple[AddressView, ...]

    @property
    def primary_name(self) -> NameView | None:
        return next((n for n in self.names if n.kind == "primary"), None)


@dataclass(frozen=True, slots=True)
class ConditionView:
    id: int
    type: str
    start: dt.datetime
    end: dt.datetime | None
    name: str | None
    geometry: dict[str, Any] | None
    timetable: list[dict[str, str]] | None
    address: AddressView | None


@dataclass(frozen=True, slots=True)
class DeviceView:
    type: str
    serial: str
    model: str
    batch: str


@dataclass(frozen=True, slots=True)
class AllocationView:
    id: int
    fitted_at: dt.datetime
    removed_at: dt.datetime | None
    device: DeviceView


@dataclass(frozen=True, slots=True)
class VersionView:
    version: int
    at: dt.datetime
    by: str
    reason: str
    changes: list[str]


@dataclass(frozen=True, slots=True)
class OrderView:
    id: int
    ref: str
    type: str
    status: str
    start_date: dt.date
    end_date: dt.date
    responsible_officer: str
    delivery_unit_code: str
    region_code: str
    notifying_org_kind: str
    notifying_org_name: str
    conditions: tuple[ConditionView, ...]
    allocations: tuple[AllocationView, ...]
    versions: tuple[VersionView, ...]
