"""People and orders in document form (docs/order-format.md): what is exported and compared.

One function per record kind, so the export, the version snapshots and the re-import's
"has anything changed?" all see a record the same way.
"""

from __future__ import annotations

from typing import Any

from tagwatch.cases.identifiers import IDENTIFIER_KEYS
from tagwatch.cases.models import (
    Address,
    Allocation,
    Condition,
    Device,
    Order,
    OrderVersion,
    Person,
)
from tagwatch.cases.validation import format_time


def _time(value: Any) -> str | None:
    return None if value is None else format_time(value)


def device_document(device: Device) -> dict[str, Any]:
    return {
        "serial": device.serial,
        "type": device.type,
        "model": device.model,
        "batch": device.batch,
    }


def address_document(address: Address) -> dict[str, Any]:
    return {
        "ref": address.ref,
        "line1": address.line1,
        "line2": address.line2,
        "town": address.town,
        "postcode": address.postcode,
        "lat": address.lat,
        "lon": address.lon,
    }


def condition_document(condition: Condition) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": condition.type,
        "start": _time(condition.start),
        "end": _time(condition.end),
    }
    if condition.type == "curfew":
        address = condition.address
        doc["address_ref"] = address.ref if address else None
        doc["timetable"] = condition.timetable or []
        doc["release_day"] = condition.release_day
        doc["safeguarding_checks"] = [
            {
                "kind": c.kind,
                "checked_by": c.checked_by,
                "checked_at": _time(c.checked_at),
                "outcome": c.outcome,
            }
            for c in (address.safeguarding_checks if address else [])
        ]
    elif condition.type in ("exclusion_zone", "inclusion_zone"):
        doc["name"] = condition.name
        doc["geometry"] = condition.geometry
        doc["schedule"] = condition.schedule
    elif condition.type == "attendance":
        doc["appointments"] = condition.appointments or []
    return doc


def allocation_document(allocation: Allocation) -> dict[str, Any]:
    return {
        "device": allocation.device.serial,
        "fitted_at": _time(allocation.fitted_at),
        "removed_at": _time(allocation.removed_at),
    }


def version_document(version: OrderVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "at": _time(version.at),
        "by": version.by,
        "reason": version.reason,
        "changes": list(version.changes),
    }


def order_document(order: Order, *, history: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": order.ref,
        "type": order.type,
        "status": order.status,
        "end_reason": order.end_reason,
        "notifying_organisation": {
            "kind": order.notifying_org_kind,
            "name": order.notifying_org_name,
        },
        "responsible_organisation": {
            "kind": order.responsible_org_kind,
            "name": order.responsible_org_name,
        },
        "region": order.region_code,
        "delivery_unit": order.delivery_unit_code,
        "responsible_officer": order.responsible_officer,
        "start_date": order.start_date.isoformat(),
        "end_date": order.end_date.isoformat(),
        "fitting_deadline": _time(order.fitting_deadline),
        "conditions": [condition_document(c) for c in order.conditions],
        "allocations": [allocation_document(a) for a in order.allocations],
    }
    if history:
        doc["history"] = [version_document(v) for v in order.versions]
    return doc


def person_document(person: Person, *, orders: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": person.ref,
        "names": [
            {"kind": n.kind, "given": n.given, "family": n.family, "middle": n.middle}
            for n in person.names
        ],
        "date_of_birth": person.date_of_birth.isoformat(),
        "sex": person.sex,
        "gender": person.gender,
        "ethnicity": person.ethnicity,
        "disability": person.disability,
        "nationality": person.nationality,
        "religion": person.religion,
        "language": person.language,
        "interpreter_needed": person.interpreter_needed,
        "identifiers": {
            key: getattr(person, key) for key in IDENTIFIER_KEYS if getattr(person, key) is not None
        },
        "restricted": person.restricted,
        "addresses": [address_document(a) for a in person.addresses],
    }
    if orders:
        doc["orders"] = [order_document(o) for o in person.orders]
    return doc
