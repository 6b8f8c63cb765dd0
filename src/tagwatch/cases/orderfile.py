"""Order files (docs/order-format.md): export the case record, import it back.

Import checks the whole file first and refuses it whole with every error found; only a clean
file is written. Records are matched by ref, so importing a file twice changes nothing, and an
order that differs becomes a new version with the reason "import". The work is done in bulk:
one load of what exists, one flush, then the events.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tagwatch import events
from tagwatch.access.principal import Principal
from tagwatch.cases import repository, validation
from tagwatch.cases.documents import device_document, order_document, person_document
from tagwatch.cases.events import AllocationRecorded, OrderChanged
from tagwatch.cases.models import Address, Allocation, Device, Order, OrderVersion, Person
from tagwatch.cases.refdata import order_refdata
from tagwatch.cases.service import apply_address, apply_person_details, build_condition
from tagwatch.cases.validation import Errors, ValidationFailed, join
from tagwatch.cases.versions import next_version
from tagwatch.db.base import utcnow

FORMAT = "tagwatch-orders"
VERSION = 1
IMPORT_ACTOR = "import"
CONDITION_FIELDS = (
    "type", "start", "end", "name", "geometry", "timetable", "schedule", "release_day",
    "appointments",
)  # fmt: skip


# Export ------------------------------------------------------------------------------------


def export_document(session: Session, principal: Principal | None = None) -> dict[str, Any]:
    """Every device and every person (in the caller's scope) as one document."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "devices": [device_document(d) for d in repository.all_devices(session)],
        "people": [
            person_document(p) for p in repository.all_people_for_export(session, principal)
        ],
    }


def dumps(document: Mapping[str, Any]) -> str:
    """The canonical bytes: keys sorted, two-space indent, UTF-8, a final newline."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# Checking ----------------------------------------------------------------------------------


@dataclass
class CheckedOrder:
    path: str
    terms: dict[str, Any]
    conditions: list[dict[str, Any]]
    allocations: list[dict[str, Any]]
    history: list[dict[str, Any]]


@dataclass
class CheckedPerson:
    path: str
    ref: str
    details: dict[str, Any]
    addresses: list[dict[str, Any]]
    orders: list[CheckedOrder] = field(default_factory=list)


@dataclass
class Checked:
    devices: list[dict[str, Any]]
    people: list[CheckedPerson]


def _version_entry(raw: object, path: str, number: int, errors: Errors) -> dict[str, Any] | None:
    if not validation.is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    if raw.get("version") != number:
        errors.add(join(path, "version"), f"must be {number} (versions count up from 1)")
    changes = raw.get("changes")
    if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
        errors.add(join(path, "changes"), "must be a list of text")
    out = {
        "version": number,
        "at": validation.time_field(raw, "at", path, errors),
        "by": validation.text(raw, "by", path, errors, max_len=120),
        "reason": validation.text(raw, "reason", path, errors, max_len=10_000),
        "changes": changes,
    }
    return out if len(errors.items) == before else None


def _check_order(
    raw: object,
    path: str,
    address_refs: list[str],
    refdata: validation.RefData,
    device_serials: set[str],
    errors: Errors,
    deferred_zones: list[tuple[str, object]],
) -> CheckedOrder | None:
    if not validation.is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    terms = validation.order_terms(raw, path, errors, refdata)
    conditions = [
        c
        for i, item in enumerate(validation.is_list(raw, "conditions", path, errors))
        if (
            c := validation.condition(
                item, join(join(path, "conditions"), i), errors, address_refs, deferred_zones
            )
        )
    ]
    allocations: list[dict[str, Any]] = []
    for i, item in enumerate(validation.is_list(raw, "allocations", path, errors)):
        here = join(join(path, "allocations"), i)
        allocation = validation.allocation(item, here, errors)
        if allocation is None:
            continue
        if allocation["device"] not in device_serials:
            errors.add(join(here, "device"), f"{allocation['device']!r} is not a known device")
        allocation["path"] = here
        allocations.append(allocation)
    history = [
        v
        for i, item in enumerate(validation.is_list(raw, "history", path, errors))
        if (v := _version_entry(item, join(join(path, "history"), i), i + 1, errors))
    ]
    if terms["status"] in ("active", "suspended"):
        for i, condition in enumerate(conditions):
            if condition["type"] == "curfew":
                problem = validation.curfew_activation_problems(condition["safeguarding_checks"])
                if problem:
                    errors.add(
                        join(join(path, "conditions"), i),
                        f"an {terms['status']} order cannot have this curfew: {problem}",
                    )
    if len(errors.items) != before:
        return None
    return CheckedOrder(path, terms, conditions, allocations, history)


@dataclass
class _Known:
    """What the store already holds that the file must agree with."""

    refdata: validation.RefData
    identifier_owners: dict[tuple[str, str], str]
    order_owners: dict[str, str]
    device_serials: set[str]
    # serial -> (order ref, fitted, removed) for allocations already stored
    allocations: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]]


def _known(session: Session) -> _Known:
    rows = session.execute(
        select(Device.serial, Order.ref, Allocation.fitted_at, Allocation.removed_at)
        .join(Allocation, Allocation.device_id == Device.id)
        .join(Order, Allocation.order_id == Order.id)
    )
    allocations: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]] = defaultdict(list)
    for serial, order_ref, fitted, removed in rows:
        allocations[serial].append((order_ref, fitted, removed))
    return _Known(
        refdata=order_refdata(session),
        identifier_owners=repository.identifier_owners(session),
        order_owners=repository.order_owners(session),
        device_serials=set(session.scalars(select(Device.serial))),
        allocations=allocations,
    )


def check_document(session: Session, document: object) -> Checked:
    """The file's content, normalised, or ValidationFailed with every problem as `path: reason`."""
    errors = Errors()
    if not isinstance(document, Mapping):
        raise ValidationFailed(["the file must hold a JSON object"])
    if document.get("format") != FORMAT:
        errors.add("format", f"must be {FORMAT!r}")
    if document.get("version") != VERSION:
        errors.add("version", f"must be {VERSION}")
    known = _known(session)

    devices: list[dict[str, Any]] = []
    serials: dict[str, str] = {}
    for i, item in enumerate(validation.is_list(document, "devices", "", errors)):
        device = validation.device(item, f"devices[{i}]", errors)
        if device is None:
            continue
        if device["serial"] in serials:
            errors.add(f"devices[{i}].serial", f"also at {serials[device['serial']]}")
        serials[device["serial"]] = f"devices[{i}]"
        devices.append(device)
    all_serials = known.device_serials | set(serials)

    people: list[CheckedPerson] = []
    person_refs: dict[str, str] = {}
    identifiers: dict[tuple[str, str], str] = {}
    order_refs: dict[str, str] = {}
    today = validation.today()
    deferred_zones: list[tuple[str, object]] = []
    for i, raw in enumerate(validation.is_list(document, "people", "", errors)):
        path = f"people[{i}]"
        if not validation.is_object(raw, path, errors):
            continue
        before = len(errors.items)
        ref = validation.person_ref(raw.get("ref"), path, errors)
        if ref is not None:
            if ref in person_refs:
                errors.add(join(path, "ref"), f"{ref} is also at {person_refs[ref]}")
            person_refs[ref] = path
        details = validation.person_details(raw, path, errors, today=today)
        for key, value in details["identifiers"].items():
            here = join(join(path, "identifiers"), key)
            owner = known.identifier_owners.get((key, value))
            if owner is not None and owner != ref:
                errors.add(here, f"{value} already belongs to {owner}")
            if (key, value) in identifiers:
                errors.add(here, f"{value} is also at {identifiers[(key, value)]}")
            identifiers[(key, value)] = path
        addresses = [
            a
            for j, item in enumerate(validation.is_list(raw, "addresses", path, errors))
            if (a := validation.address(item, f"{path}.addresses[{j}]", errors))
        ]
        address_refs = [a["ref"] for a in addresses]
        for j, address_ref in enumerate(address_refs):
            if address_ref in address_refs[:j]:
                errors.add(f"{path}.addresses[{j}].ref", f"{address_ref!r} is used twice")
        orders: list[CheckedOrder] = []
        for j, item in enumerate(validation.is_list(raw, "orders", path, errors)):
            here = f"{path}.orders[{j}]"
            order = _check_order(
                item, here, address_refs, known.refdata, all_serials, errors, deferred_zones
            )
            if order is None:
                continue
            order_ref = order.terms["ref"]
            if order_ref in order_refs:
                errors.add(join(here, "ref"), f"{order_ref} is also at {order_refs[order_ref]}")
            order_refs[order_ref] = here
            owner = known.order_owners.get(order_ref)
            if owner is not None and owner != ref:
                errors.add(join(here, "ref"), f"{order_ref} belongs to {owner}")
            orders.append(order)
        if len(errors.items) == before and ref is not None:
            people.append(CheckedPerson(path, ref, details, addresses, orders))
    validation.check_zones(deferred_zones, errors)
    if not errors:
        _check_allocation_overlaps(people, known, errors)
    if errors:
        raise ValidationFailed(errors.items)
    return Checked(devices, people)


def _check_allocation_overlaps(people: list[CheckedPerson], known: _Known, errors: Errors) -> None:
    """A device is on at most one allocation at any moment, across the file and the store."""
    in_file = {o.terms["ref"] for p in people for o in p.orders}
    spans: dict[str, list[tuple[dt.datetime, dt.datetime | None, str]]] = defaultdict(list)
    for serial, stored in known.allocations.items():
        for order_ref, fitted, removed in stored:
            if order_ref not in in_file:
                spans[serial].append((fitted, removed, f"order {order_ref} (already stored)"))
    for person in people:
        for order in person.orders:
            for allocation in order.allocations:
                spans[allocation["device"]].append(
                    (allocation["fitted_at"], allocation["removed_at"], allocation["path"])
                )
    for serial, items in spans.items():
        items.sort(key=lambda s: s[0])
        for (a_start, a_end, a_where), (b_start, b_end, b_where) in itertools.pairwise(items):
            if validation.spans_overlap((a_start, a_end), (b_start, b_end)):
                where = b_where if not b_where.startswith("order ") else a_where
                other = a_where if where == b_where else b_where
                errors.add(where, f"device {serial} is also allocated at {other} at that time")


# Writing -----------------------------------------------------------------------------------


@dataclass
class ImportResult:
    people_added: int = 0
    people_changed: int = 0
    orders_added: int = 0
    orders_changed: int = 0
    devices_added: int = 0
    devices_changed: int = 0

    @property
    def changed_anything(self) -> bool:
        return any(vars(self).values())


def import_document(session: Session, document: object) -> ImportResult:
    """Check the document whole, then write it in bulk. Does not commit."""
    checked = check_document(session, document)
    result = ImportResult()
    now = utcnow()
    devices = repository.devices_by_serial(session, [d["serial"] for d in checked.devices])
    for data in checked.devices:
        device = devices.get(data["serial"])
        if device is None:
            device = Device(**data)
            session.add(device)
            devices[data["serial"]] = device
            result.devices_added += 1
        elif device_document(device) != data:
            for key, value in data.items():
                setattr(device, key, value)
            result.devices_changed += 1
    missing = {
        a["device"]
        for p in checked.people
        for o in p.orders
        for a in o.allocations
        if a["device"] not in devices
    }
    devices.update(repository.devices_by_serial(session, missing))

    existing = _existing_people(session, [p.ref for p in checked.people])
    new_allocations: list[Allocation] = []
    changed_orders: list[Order] = []
    for incoming in checked.people:
        person = existing.get(incoming.ref)
        if person is None:
            person = Person(ref=incoming.ref, created_at=now)
            session.add(person)
            result.people_added += 1
            before = None
        else:
            before = person_document(person, orders=False)
        apply_person_details(person, incoming.details)
        _sync_addresses(person, incoming.addresses)
        if before is not None and before != person_document(person, orders=False):
            result.people_changed += 1
        orders = {o.ref: o for o in person.orders}
        for checked_order in incoming.orders:
            order = orders.get(checked_order.terms["ref"])
            if order is None:
                order = _new_order(person, checked_order, devices, now, new_allocations)
                result.orders_added += 1
                changed_orders.append(order)
            elif _update_order(person, order, checked_order, devices, now, new_allocations):
                result.orders_changed += 1
                changed_orders.append(order)
    session.flush()
    # One settling for the whole file: downstream work (evaluation) runs once per allocation.
    with events.batch(session):
        for order in changed_orders:
            events.publish(session, OrderChanged(order_id=order.id, version=order.version))
        for allocation in new_allocations:
            events.publish(
                session,
                AllocationRecorded(
                    allocation_id=allocation.id,
                    order_id=allocation.order_id,
                    device_serial=allocation.device.serial,
                    fitted_at=allocation.fitted_at,
                    removed_at=allocation.removed_at,
                ),
            )
    return result


def _existing_people(session: Session, refs: list[str]) -> dict[str, Person]:
    found: dict[str, Person] = {}
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        query = (
            select(Person)
            .where(Person.ref.in_(chunk))
            .options(
                *repository.PERSON_LOAD, selectinload(Person.orders).options(*repository.ORDER_LOAD)
            )
        )
        found.update({p.ref: p for p in session.scalars(query)})
    return found


def _sync_addresses(person: Person, addresses: list[dict[str, Any]]) -> None:
    """Addresses matched by ref; ones no longer listed go unless a condition still uses them."""
    by_ref = {a.ref: a for a in person.addresses}
    for data in addresses:
        address = by_ref.get(data["ref"])
        if address is None:
            person.addresses.append(Address(**data))
        else:
            apply_address(address, data)
    listed = {a["ref"] for a in addresses}
    used = {c.address_id for o in person.orders for c in o.conditions if c.address_id is not None}
    person.addresses = [a for a in person.addresses if a.ref in listed or a.id in used]


def _order_fields(order: Order, terms: Mapping[str, Any]) -> None:
    for key, value in terms.items():
        setattr(order, key, value)


def _new_order(
    person: Person,
    data: CheckedOrder,
    devices: dict[str, Device],
    now: dt.datetime,
    new_allocations: list[Allocation],
) -> Order:
    order = Order(created_at=now, updated_at=now, version=0)
    person.orders.append(order)
    _order_fields(order, data.terms)
    order.conditions = [build_condition(person, c) for c in data.conditions]
    for a in data.allocations:
        allocation = _allocation(order, person, devices[a["device"]], a)
        new_allocations.append(allocation)
    if order.status in ("active", "suspended", "ended") and order.activated_at is None:
        order.activated_at = order.allocations[0].fitted_at if order.allocations else now
    if order.status == "ended":
        order.ended_at = now
    if data.history:
        # The file's history is the order's own: kept as it was, the last version holding
        # the order as it now stands.
        for entry in data.history:
            order.versions.append(OrderVersion(**entry, snapshot={}))
        order.version = data.history[-1]["version"]
        order.versions[-1].snapshot = order_document(order, history=False)
    else:
        next_version(order, by=IMPORT_ACTOR, reason="import", at=now)
    return order


def _allocation(
    order: Order, person: Person, device: Device, data: Mapping[str, Any]
) -> Allocation:
    # Joined to the order first, so the order's cascade (not the device's) brings it in.
    allocation = Allocation(fitted_at=data["fitted_at"], removed_at=data["removed_at"])
    order.allocations.append(allocation)
    allocation.person = person
    allocation.device = device
    return allocation


def _update_order(
    person: Person,
    order: Order,
    data: CheckedOrder,
    devices: dict[str, Device],
    now: dt.datetime,
    new_allocations: list[Allocation],
) -> bool:
    """Bring a stored order in line with the file; True when that made a new version."""
    _order_fields(order, data.terms)
    for index, incoming in enumerate(data.conditions):
        built = build_condition(person, incoming)
        if index < len(order.conditions):
            condition = order.conditions[index]
            for key in CONDITION_FIELDS:
                setattr(condition, key, getattr(built, key))
            condition.address = built.address
        else:
            order.conditions.append(built)
    del order.conditions[len(data.conditions) :]
    stored = {(a.device.serial, a.fitted_at): a for a in order.allocations}
    keep: list[Allocation] = []
    for a in data.allocations:
        allocation = stored.get((a["device"], a["fitted_at"]))
        if allocation is None:
            allocation = _allocation(order, person, devices[a["device"]], a)
            new_allocations.append(allocation)
        elif allocation.removed_at != a["removed_at"]:
            allocation.removed_at = a["removed_at"]
            new_allocations.append(allocation)
        keep.append(allocation)
    order.allocations[:] = keep
    if order.status in ("active", "suspended", "ended") and order.activated_at is None:
        order.activated_at = now
    if order.status == "ended" and order.ended_at is None:
        order.ended_at = now
    return next_version(order, by=IMPORT_ACTOR, reason="import", at=now) is not None


def load(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            [f"line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"]
        ) from None
