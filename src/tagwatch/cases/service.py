"""Use cases of the case record. Nothing here commits: the request or command does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.cases import repository, validation
from tagwatch.cases.documents import order_document
from tagwatch.cases.events import AllocationRecorded
from tagwatch.cases.identifiers import IDENTIFIER_KEYS
from tagwatch.cases.lifecycle import check_transition
from tagwatch.cases.models import (
    Address,
    Allocation,
    Condition,
    Device,
    Order,
    Person,
    PersonName,
    SafeguardingCheck,
)
from tagwatch.cases.names import fold
from tagwatch.cases.refdata import order_refdata
from tagwatch.cases.validation import Errors, ValidationFailed
from tagwatch.cases.versions import record_version
from tagwatch.db.base import utcnow
from tagwatch.events import publish

FITTED_STATUSES = ("awaiting_fitting", "active", "suspended")


class NotFound(LookupError):
    """No such record in the caller's scope."""


@dataclass
class Conflict(Exception):
    """The change would break a rule about other records (duplicates, overlaps, lifecycle)."""

    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def _raise_if(errors: Errors) -> None:
    if errors:
        raise ValidationFailed(errors.items)


def _next_ref(session: Session, column: Any, prefix: str, count_of: Any) -> str:
    number = (session.scalar(select(func.count()).select_from(count_of)) or 0) + 1
    while True:
        ref = f"{prefix}{number:06d}"
        if session.scalar(select(column).where(column == ref)) is None:
            return ref
        number += 1


# People ------------------------------------------------------------------------------------


def person_name(given: str, family: str, middle: str | None, kind: str) -> PersonName:
    return PersonName(
        kind=kind,
        given=given,
        family=family,
        middle=middle,
        normalised=fold(f"{given} {family}"),
        normalised_family=fold(family),
    )


def apply_person_details(person: Person, details: Mapping[str, Any]) -> None:
    """Copy validated person fields (names replaced only when they differ)."""
    for key in (
        "date_of_birth", "sex", "gender", "ethnicity", "disability", "nationality",
        "religion", "language", "interpreter_needed", "restricted",
    ):  # fmt: skip
        setattr(person, key, details[key])
    for key in IDENTIFIER_KEYS:
        setattr(person, key, details["identifiers"].get(key))
    wanted = [(n["kind"], n["given"], n["family"], n["middle"]) for n in details["names"]]
    current = [(n.kind, n.given, n.family, n.middle) for n in person.names]
    if wanted != current:
        person.names = [person_name(g, f, m, k) for k, g, f, m in wanted]


def apply_address(address: Address, data: Mapping[str, Any]) -> None:
    for key in ("ref", "line1", "line2", "town", "postcode", "lat", "lon"):
        setattr(address, key, data[key])


def _identifier_clash(session: Session, ids: dict[str, str], exclude_id: int | None) -> None:
    for other in repository.people_with_identifiers(session, ids):
        if other.id != exclude_id:
            shared = [k for k in IDENTIFIER_KEYS if ids.get(k) and getattr(other, k) == ids[k]]
            raise Conflict(
                f"{', '.join(shared)} already belongs to {other.ref}",
                {"error": "duplicate_identifier", "existing_ref": other.ref, "identifiers": shared},
            )


@dataclass(frozen=True)
class Created:
    person: Person
    linked: bool  # True: the name was added as an alias of an existing person


def create_person(
    session: Session,
    principal: Principal,
    raw: Mapping[str, Any],
    *,
    confirm_not_duplicate: bool = False,
    link_to: str | None = None,
) -> Created:
    """A new person; or, with `link_to`, their name as an alias of that existing person.

    Refused when an identifier is already someone's; a same-name-and-birth-date match must be
    confirmed as a different person or linked.
    """
    errors = Errors()
    details = validation.person_details(raw, "", errors, today=validation.today())
    addresses = [
        a
        for i, item in enumerate(validation.is_list(raw, "addresses", "", errors))
        if (a := validation.address(item, f"addresses[{i}]", errors))
    ]
    _check_unique_refs([a["ref"] for a in addresses], "addresses", errors)
    _raise_if(errors)
    _identifier_clash(session, details["identifiers"], None)
    primary = next(n for n in details["names"] if n["kind"] == "primary")
    if link_to:
        existing = repository.person_by_ref(session, principal, link_to)
        if existing is None:
            raise NotFound(f"no person {link_to}")
        add_alias(session, existing, primary)
        return Created(existing, linked=True)
    matches = repository.people_named(
        session, primary["given"], primary["family"], details["date_of_birth"]
    )
    if matches and not confirm_not_duplicate:
        raise Conflict(
            "a person with this name and date of birth already exists: confirm this is "
            "someone else (confirm_not_duplicate) or link the name to them (link_to)",
            {"error": "possible_duplicate", "matches": [p.ref for p in matches]},
        )
    person = Person(ref=_next_ref(session, Person.ref, "TW", Person.__table__), created_at=utcnow())
    apply_person_details(person, details)
    person.addresses = [Address(**a) for a in addresses]
    session.add(person)
    session.flush()
    return Created(person, linked=False)


def _check_unique_refs(refs: list[str], path: str, errors: Errors) -> None:
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        if ref in seen:
            errors.add(f"{path}[{i}].ref", f"{ref!r} is used twice")
        seen.add(ref)


def get_person(session: Session, principal: Principal, ref: str) -> Person:
    person = repository.person_by_ref(session, principal, ref)
    if person is None:
        raise NotFound(f"no person {ref}")
    return person


def update_person(
    session: Session, principal: Principal, ref: str, changes: Mapping[str, Any]
) -> Person:
    """Change a person's own fields (names, identifiers, details), not addresses."""
    from tagwatch.cases.documents import person_document

    person = get_person(session, principal, ref)
    unknown = set(changes) - {
        "names", "date_of_birth", "sex", "gender", "ethnicity", "disability", "nationality",
        "religion", "language", "interpreter_needed", "restricted", "identifiers",
    }  # fmt: skip
    errors = Errors()
    for key in sorted(unknown):
        errors.add(key, "cannot be changed here")
    merged = {**person_document(person, orders=False), **changes}
    details = validation.person_details(merged, "", errors, today=validation.today())
    _raise_if(errors)
    _identifier_clash(session, details["identifiers"], person.id)
    apply_person_details(person, details)
    session.flush()
    return person


def add_alias(session: Session, person: Person, name: Mapping[str, Any]) -> PersonName:
    alias = person_name(name["given"], name["family"], name.get("middle"), "alias")
    if any((n.normalised, n.middle) == (alias.normalised, alias.middle) for n in person.names):
        raise Conflict(f"{person.ref} already has this name", {"error": "duplicate_name"})
    person.names.append(alias)
    session.flush()
    return alias


def add_alias_by_ref(
    session: Session, principal: Principal, ref: str, raw: Mapping[str, Any]
) -> PersonName:
    errors = Errors()
    name = validation.name({**raw, "kind": "alias"}, "", errors)
    _raise_if(errors)
    assert name is not None
    return add_alias(session, get_person(session, principal, ref), name)


def add_address(
    session: Session, principal: Principal, ref: str, raw: Mapping[str, Any]
) -> Address:
    person = get_person(session, principal, ref)
    errors = Errors()
    data = validation.address(raw, "", errors)
    if data and any(a.ref == data["ref"] for a in person.addresses):
        errors.add("ref", f"{data['ref']!r} is already one of this person's addresses")
    _raise_if(errors)
    assert data is not None
    address = Address(**data)
    person.addresses.append(address)
    session.flush()
    return address


def record_safeguarding_check(
    session: Session, principal: Principal, ref: str, address_ref: str, raw: Mapping[str, Any]
) -> SafeguardingCheck:
    """Record a check of an address; each open order with a curfew there gets a new version."""
    person = get_person(session, principal, ref)
    address = next((a for a in person.addresses if a.ref == address_ref), None)
    if address is None:
        raise NotFound(f"{ref} has no address {address_ref}")
    errors = Errors()
    data = validation.safeguarding_check(raw, "", errors)
    _raise_if(errors)
    assert data is not None
    check = SafeguardingCheck(**data)
    address.safeguarding_checks.append(check)
    session.flush()
    for order in repository.open_orders_with_curfew_at(session, address.id):
        record_version(
            session, order, by=principal.username, reason=f"{data['kind']} check recorded"
        )
    return check


# Orders ------------------------------------------------------------------------------------


def get_order(session: Session, principal: Principal, ref: str) -> Order:
    order = repository.order_by_ref(session, principal, ref)
    if order is None:
        raise NotFound(f"no order {ref}")
    return order


def _order_terms(session: Session, raw: Mapping[str, Any], errors: Errors) -> dict[str, Any]:
    return validation.order_terms(raw, "", errors, order_refdata(session))


def build_condition(person: Person, data: Mapping[str, Any]) -> Condition:
    """A Condition from validated data; a curfew's checks are recorded on its address."""
    address = None
    if data["address_ref"] is not None:
        address = next(a for a in person.addresses if a.ref == data["address_ref"])
        have = {
            (c.kind, c.checked_by, c.checked_at, c.outcome) for c in address.safeguarding_checks
        }
        for check in data["safeguarding_checks"]:
            key = (check["kind"], check["checked_by"], check["checked_at"], check["outcome"])
            if key not in have:
                address.safeguarding_checks.append(SafeguardingCheck(**check))
                have.add(key)
    return Condition(
        type=data["type"],
        start=data["start"],
        end=data["end"],
        address=address,
        name=data["name"],
        geometry=data["geometry"],
        timetable=data["timetable"],
        schedule=data["schedule"],
        release_day=data["release_day"],
        appointments=data["appointments"],
    )


def _conditions(person: Person, raw: Any, path: str, errors: Errors) -> list[dict[str, Any]]:
    refs = [a.ref for a in person.addresses]
    items = raw if isinstance(raw, list) else []
    if raw is not None and not isinstance(raw, list):
        errors.add(path, "must be a list")
    return [
        c
        for i, item in enumerate(items)
        if (c := validation.condition(item, f"{path}[{i}]", errors, refs))
    ]


def create_order(
    session: Session, principal: Principal, person_ref: str, raw: Mapping[str, Any]
) -> Order:
    """A new draft order for a person in scope, with its conditions, as version 1.

    A person with no order yet is in nobody's caseload, so whoever may write orders can give
    them their first (otherwise a practitioner could not take on a person they just created).
    """
    person = repository.person_by_ref(session, principal, person_ref)
    if person is None:
        unassigned = repository.person_by_ref(session, None, person_ref)
        if (
            unassigned is not None
            and not unassigned.orders
            and (principal.has("restricted:read") or not unassigned.restricted)
            and principal.force_code is None
        ):
            person = unassigned
    if person is None:
        raise NotFound(f"no person {person_ref}")
    errors = Errors()
    ref = raw.get("ref") or _next_ref(session, Order.ref, "ORD", Order.__table__)
    terms = _order_terms(
        session, {**raw, "ref": ref, "status": "draft", "end_reason": None}, errors
    )
    conditions = _conditions(person, raw.get("conditions"), "conditions", errors)
    _raise_if(errors)
    if session.scalar(select(Order.id).where(Order.ref == ref)) is not None:
        raise Conflict(f"order {ref} already exists", {"error": "duplicate_order"})
    now = utcnow()
    order = Order(created_at=now, updated_at=now, version=0, **terms)
    person.orders.append(order)
    order.conditions = [build_condition(person, c) for c in conditions]
    record_version(
        session, order, by=principal.username, reason=str(raw.get("reason") or "created")
    )
    return order


VARIABLE_TERMS = (
    "type", "notifying_organisation", "responsible_organisation", "region", "delivery_unit",
    "responsible_officer", "start_date", "end_date", "fitting_deadline",
)  # fmt: skip


def _need_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise ValidationFailed(["reason: a change to an order needs a reason"])
    return reason.strip()


def vary_order(
    session: Session, principal: Principal, ref: str, changes: Mapping[str, Any], reason: str
) -> Order:
    """Change an order's terms: a new version with the reason."""
    reason = _need_reason(reason)
    order = get_order(session, principal, ref)
    if order.status == "ended":
        raise Conflict(f"order {ref} has ended and cannot be varied", {"error": "order_ended"})
    errors = Errors()
    for key in sorted(set(changes) - set(VARIABLE_TERMS)):
        errors.add(key, "cannot be varied (status has its own call; conditions too)")
    merged = {**order_document(order, history=False), **changes}
    terms = _order_terms(session, merged, errors)
    _raise_if(errors)
    for key, value in terms.items():
        setattr(order, key, value)
    if record_version(session, order, by=principal.username, reason=reason) is None:
        raise ValidationFailed(["changes: nothing would change"])
    return order


def activation_problem(order: Order) -> str | None:
    """Why the order may not be active now (curfew addresses not cleared), if so."""
    for index, condition in enumerate(order.conditions):
        if condition.type != "curfew" or condition.address is None:
            continue
        checks = [
            {"kind": c.kind, "outcome": c.outcome} for c in condition.address.safeguarding_checks
        ]
        problem = validation.curfew_activation_problems(checks)
        if problem:
            return f"condition {index + 1} (curfew at {condition.address.ref}): {problem}"
    return None


def transition_order(
    session: Session,
    principal: Principal,
    ref: str,
    target: str,
    *,
    reason: str,
    end_reason: str | None = None,
) -> Order:
    """Move an order along its lifecycle, refusing illegal moves with the reason."""
    reason = _need_reason(reason)
    order = get_order(session, principal, ref)
    check_transition(order.status, target, end_reason)
    if target == "active":
        problem = activation_problem(order)
        if problem:
            raise Conflict(
                f"order {ref} cannot become active: {problem}", {"error": "safeguarding"}
            )
    now = utcnow()
    order.status = target
    order.end_reason = end_reason
    if target == "active" and order.activated_at is None:
        order.activated_at = now
    if target == "ended":
        order.ended_at = now
    record_version(session, order, by=principal.username, reason=reason, at=now)
    return order


def add_condition(
    session: Session, principal: Principal, ref: str, raw: Mapping[str, Any], reason: str
) -> Condition:
    reason = _need_reason(reason)
    order = get_order(session, principal, ref)
    if order.status == "ended":
        raise Conflict(f"order {ref} has ended", {"error": "order_ended"})
    errors = Errors()
    data = validation.condition(raw, "", errors, [a.ref for a in order.person.addresses])
    _raise_if(errors)
    assert data is not None
    condition = build_condition(order.person, data)
    order.conditions.append(condition)
    if order.status == "active" and condition.type == "curfew":
        problem = activation_problem(order)
        if problem:
            raise Conflict(f"cannot add to an active order: {problem}", {"error": "safeguarding"})
    record_version(session, order, by=principal.username, reason=reason)
    return condition


def remove_condition(
    session: Session, principal: Principal, ref: str, condition_id: int, reason: str
) -> Order:
    """Before monitoring starts a condition is deleted; after, it is ended now (kept)."""
    reason = _need_reason(reason)
    order = get_order(session, principal, ref)
    condition = next((c for c in order.conditions if c.id == condition_id), None)
    if condition is None:
        raise NotFound(f"order {ref} has no condition {condition_id}")
    now = utcnow()
    if order.activated_at is None:
        order.conditions.remove(condition)
    elif condition.end is None or condition.end > now:
        condition.end = max(now, condition.start + dt.timedelta(seconds=1))
    else:
        raise Conflict("the condition has already ended", {"error": "condition_ended"})
    record_version(session, order, by=principal.username, reason=reason)
    return order


# Devices -----------------------------------------------------------------------------------


def create_device(session: Session, raw: Mapping[str, Any]) -> Device:
    errors = Errors()
    data = validation.device(raw, "", errors)
    _raise_if(errors)
    assert data is not None
    if repository.device_by_serial(session, data["serial"]) is not None:
        raise Conflict(f"device {data['serial']} already exists", {"error": "duplicate_device"})
    device = Device(**data)
    session.add(device)
    session.flush()
    return device


def _refuse_overlap(
    session: Session, device: Device, span: tuple[dt.datetime, dt.datetime | None], skip: int | None
) -> None:
    for other in repository.allocations_of_device(session, device.id):
        if other.id != skip and validation.spans_overlap(span, (other.fitted_at, other.removed_at)):
            raise Conflict(
                f"device {device.serial} is already allocated from "
                f"{validation.format_time(other.fitted_at)}"
                + (f" to {validation.format_time(other.removed_at)}" if other.removed_at else ""),
                {"error": "device_overlap", "allocation_id": other.id},
            )


def _publish_allocation(session: Session, allocation: Allocation) -> None:
    publish(
        session,
        AllocationRecorded(
            allocation_id=allocation.id,
            order_id=allocation.order_id,
            device_serial=allocation.device.serial,
            fitted_at=allocation.fitted_at,
            removed_at=allocation.removed_at,
        ),
    )


def fit_device(
    session: Session, principal: Principal, ref: str, serial: str, fitted_at: dt.datetime
) -> Allocation:
    order = get_order(session, principal, ref)
    if order.status not in FITTED_STATUSES:
        raise Conflict(
            f"a device can be fitted only when the order is {', '.join(FITTED_STATUSES)}",
            {"error": "order_status"},
        )
    device = repository.device_by_serial(session, serial)
    if device is None:
        raise NotFound(f"no device {serial}")
    _refuse_overlap(session, device, (fitted_at, None), None)
    allocation = Allocation(person_id=order.person_id, fitted_at=fitted_at)
    order.allocations.append(allocation)
    allocation.device = device
    record_version(session, order, by=principal.username, reason=f"device {serial} fitted")
    _publish_allocation(session, allocation)
    return allocation


def remove_device(
    session: Session, principal: Principal, allocation_id: int, removed_at: dt.datetime
) -> Allocation:
    allocation = repository.allocation_by_id(session, principal, allocation_id)
    if allocation is None:
        raise NotFound(f"no allocation {allocation_id}")
    if allocation.removed_at is not None:
        raise Conflict("the device's removal is already recorded", {"error": "already_removed"})
    if removed_at <= allocation.fitted_at:
        raise ValidationFailed(["removed_at: must be after the fitting"])
    _refuse_overlap(session, allocation.device, (allocation.fitted_at, removed_at), allocation.id)
    allocation.removed_at = removed_at
    order = get_order(session, principal, allocation.order.ref)
    record_version(
        session, order, by=principal.username, reason=f"device {allocation.device.serial} removed"
    )
    _publish_allocation(session, allocation)
    return allocation
