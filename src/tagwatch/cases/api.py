"""JSON API of the case record: people, orders, conditions, devices, reference data.

People and orders are read and written in the document form of docs/order-format.md. Every
view of a person and every search is audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status

from tagwatch.access.audit import record
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.cases import refdata, repository, service
from tagwatch.cases.documents import (
    address_document,
    condition_document,
    device_document,
    order_document,
    person_document,
    version_document,
)
from tagwatch.cases.identifiers import VALIDATORS
from tagwatch.cases.lifecycle import IllegalTransition
from tagwatch.cases.models import Allocation, Order, Person
from tagwatch.cases.schemas import (
    AllocationOut,
    ConditionIn,
    FitIn,
    PersonPage,
    ReferenceValueChange,
    ReferenceValueIn,
    ReferenceValueOut,
    RemovalIn,
    TransitionIn,
    VaryIn,
)
from tagwatch.cases.validation import ValidationFailed
from tagwatch.db.deps import DbSession

router = APIRouter(tags=["cases"])

Document = Annotated[dict[str, Any], Body(description="In the form of docs/order-format.md")]


@contextmanager
def _answers() -> Iterator[None]:
    """Service refusals as HTTP answers: 422 bad input, 404 not in scope, 409 conflicts."""
    try:
        yield
    except ValidationFailed as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": exc.errors}) from exc
    except service.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except service.Conflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, {"message": exc.message, **exc.detail}
        ) from exc
    except IllegalTransition as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, {"message": str(exc), "error": "illegal_transition"}
        ) from exc


def _person_out(person: Person) -> dict[str, Any]:
    return person_document(person, orders=False)


def _order_out(order: Order) -> dict[str, Any]:
    doc = order_document(order, history=False)
    doc["person_ref"] = order.person.ref
    doc["version"] = order.version
    doc["conditions"] = [{"id": c.id, **condition_document(c)} for c in order.conditions]
    doc["allocations"] = [_allocation_out(a).model_dump(mode="json") for a in order.allocations]
    return doc


def _allocation_out(allocation: Allocation) -> AllocationOut:
    return AllocationOut(
        id=allocation.id,
        order_ref=allocation.order.ref,
        person_ref=allocation.person.ref,
        device=allocation.device.serial,
        fitted_at=allocation.fitted_at,
        removed_at=allocation.removed_at,
    )


# People ------------------------------------------------------------------------------------


@router.get("/people", response_model=PersonPage)
def search_people(
    session: DbSession,
    principal: Annotated[Principal, require("person:search")],
    name: Annotated[str | None, Query(max_length=200)] = None,
    crn: Annotated[str | None, Query(max_length=20)] = None,
    pnc: Annotated[str | None, Query(max_length=20)] = None,
    date_of_birth: dt.date | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> PersonPage:
    """People in scope matching every term given (names fold case, accents and punctuation)."""
    errors = []
    for key, value in (("crn", crn), ("pnc", pnc)):
        if value:
            try:
                VALIDATORS[key](value)
            except ValueError as exc:
                errors.append(f"{key}: {exc}")
    if errors:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": errors})
    terms = repository.PersonSearch(
        name=name,
        crn=VALIDATORS["crn"](crn) if crn else None,
        pnc=VALIDATORS["pnc"](pnc) if pnc else None,
        date_of_birth=date_of_birth,
        page=page,
        page_size=page_size,
    )
    people, total = repository.search_people(session, principal, terms)
    record(
        session, principal, "person.search", subject_type="person",
        detail={
            "terms": {"name": name, "crn": crn, "pnc": pnc,
                      "date_of_birth": date_of_birth.isoformat() if date_of_birth else None},
            "total": total, "returned": [p.ref for p in people],
        },
    )  # fmt: skip
    return PersonPage(
        total=total, page=page, page_size=page_size, items=[_person_out(p) for p in people]
    )


@router.post("/people", status_code=status.HTTP_201_CREATED)
def create_person(
    session: DbSession,
    principal: Annotated[Principal, require("person:write")],
    person: Document,
    confirm_not_duplicate: bool = False,
    link_to: Annotated[
        str | None, Query(description="Add the name as an alias of this person")
    ] = None,
) -> dict[str, Any]:
    """A new person. 409 when an identifier is someone's already, or when a person with the
    same name and date of birth exists (confirm_not_duplicate or link_to then decides)."""
    with _answers():
        created = service.create_person(
            session, principal, person, confirm_not_duplicate=confirm_not_duplicate, link_to=link_to
        )
    return {**_person_out(created.person), "linked": created.linked}


@router.get("/people/{ref}")
def read_person(
    session: DbSession, principal: Annotated[Principal, require("person:read")], ref: str
) -> dict[str, Any]:
    with _answers():
        person = service.get_person(session, principal, ref)
    record(session, principal, "person.view", subject_type="person", subject_id=person.ref)
    return _person_out(person)


@router.patch("/people/{ref}")
def update_person(
    session: DbSession,
    principal: Annotated[Principal, require("person:write")],
    ref: str,
    changes: Document,
) -> dict[str, Any]:
    with _answers():
        person = service.update_person(session, principal, ref, changes)
    return _person_out(person)


@router.post("/people/{ref}/aliases", status_code=status.HTTP_201_CREATED)
def add_alias(
    session: DbSession,
    principal: Annotated[Principal, require("person:write")],
    ref: str,
    name: Annotated[dict[str, Any], Body(description="{given, family, middle}")],
) -> dict[str, Any]:
    with _answers():
        service.add_alias_by_ref(session, principal, ref, name)
        person = service.get_person(session, principal, ref)
    return _person_out(person)


@router.post("/people/{ref}/addresses", status_code=status.HTTP_201_CREATED)
def add_address(
    session: DbSession,
    principal: Annotated[Principal, require("person:write")],
    ref: str,
    address: Document,
) -> dict[str, Any]:
    with _answers():
        return address_document(service.add_address(session, principal, ref, address))


@router.post(
    "/people/{ref}/addresses/{address_ref}/safeguarding-checks",
    status_code=status.HTTP_201_CREATED,
)
def record_safeguarding_check(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    address_ref: str,
    check: Annotated[dict[str, Any], Body(description="{kind, checked_by, checked_at, outcome}")],
) -> dict[str, Any]:
    """A domestic abuse or child safeguarding check of a curfew address."""
    with _answers():
        saved = service.record_safeguarding_check(session, principal, ref, address_ref, check)
    return {
        "id": saved.id,
        "kind": saved.kind,
        "checked_by": saved.checked_by,
        "checked_at": saved.checked_at,
        "outcome": saved.outcome,
    }


@router.get("/people/{ref}/orders")
def person_orders(
    session: DbSession, principal: Annotated[Principal, require("order:read")], ref: str
) -> list[dict[str, Any]]:
    with _answers():
        person = service.get_person(session, principal, ref)
    orders = repository.orders_of(session, principal, person.id)
    record(session, principal, "order.view", subject_type="person", subject_id=person.ref,
           detail={"orders": [o.ref for o in orders]})  # fmt: skip
    return [_order_out(o) for o in orders]


@router.post("/people/{ref}/orders", status_code=status.HTTP_201_CREATED)
def create_order(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    order: Document,
) -> dict[str, Any]:
    """A new draft order (version 1) with any conditions given."""
    with _answers():
        return _order_out(service.create_order(session, principal, ref, order))


# Orders ------------------------------------------------------------------------------------


@router.get("/orders/{ref}")
def read_order(
    session: DbSession, principal: Annotated[Principal, require("order:read")], ref: str
) -> dict[str, Any]:
    """The order with its conditions (zones, curfew addresses) and allocations; audited."""
    with _answers():
        order = service.get_order(session, principal, ref)
    record(session, principal, "order.view", subject_type="order", subject_id=order.ref)
    return _order_out(order)


@router.patch("/orders/{ref}")
def vary_order(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    body: VaryIn,
) -> dict[str, Any]:
    """Vary an order's terms: a new version recording the reason."""
    with _answers():
        return _order_out(service.vary_order(session, principal, ref, body.changes, body.reason))


@router.post("/orders/{ref}/transitions")
def transition_order(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    body: TransitionIn,
) -> dict[str, Any]:
    """Move the order along its lifecycle; an illegal move is refused (409) with the reason."""
    with _answers():
        order = service.transition_order(
            session, principal, ref, body.status, reason=body.reason, end_reason=body.end_reason
        )
    return _order_out(order)


@router.get("/orders/{ref}/history")
def order_history(
    session: DbSession, principal: Annotated[Principal, require("order:read")], ref: str
) -> list[dict[str, Any]]:
    """Every version of the order: who, when, why and what changed."""
    with _answers():
        order = service.get_order(session, principal, ref)
    return [version_document(v) for v in repository.versions_of(session, order.id)]


@router.post("/orders/{ref}/conditions", status_code=status.HTTP_201_CREATED)
def add_condition(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    body: ConditionIn,
) -> dict[str, Any]:
    with _answers():
        service.add_condition(session, principal, ref, body.condition, body.reason)
        return _order_out(service.get_order(session, principal, ref))


@router.delete("/orders/{ref}/conditions/{condition_id}")
def remove_condition(
    session: DbSession,
    principal: Annotated[Principal, require("order:write")],
    ref: str,
    condition_id: int,
    reason: Annotated[str, Query(min_length=1)],
) -> dict[str, Any]:
    """Delete a condition before monitoring starts; end it now once it has."""
    with _answers():
        return _order_out(service.remove_condition(session, principal, ref, condition_id, reason))


@router.post(
    "/orders/{ref}/allocations", status_code=status.HTTP_201_CREATED, response_model=AllocationOut
)
def fit_device(
    session: DbSession,
    principal: Annotated[Principal, require("device:write")],
    ref: str,
    body: FitIn,
) -> AllocationOut:
    """Record a device fitted to the order's wearer; refused if the device is on someone then."""
    with _answers():
        allocation = service.fit_device(session, principal, ref, body.device, body.fitted_at)
    return _allocation_out(allocation)


# Devices -----------------------------------------------------------------------------------


@router.get("/devices")
def list_devices(
    session: DbSession,
    principal: Annotated[Principal, require("device:read")],
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    return [
        device_document(d) for d in repository.list_devices(session, page=page, page_size=page_size)
    ]


@router.post("/devices", status_code=status.HTTP_201_CREATED)
def create_device(
    session: DbSession,
    principal: Annotated[Principal, require("device:write")],
    device: Annotated[dict[str, Any], Body(description="{serial, type, model, batch}")],
) -> dict[str, Any]:
    with _answers():
        return device_document(service.create_device(session, device))


@router.get("/devices/{serial}/allocations", response_model=list[AllocationOut])
def device_allocations(
    session: DbSession,
    principal: Annotated[Principal, require("device:read")],
    serial: str,
) -> list[AllocationOut]:
    """The device's allocations to orders the caller may see."""
    device = repository.device_by_serial(session, serial)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {serial}")
    visible = [
        a
        for a in repository.allocations_of_device(session, device.id)
        if repository.allocation_by_id(session, principal, a.id) is not None
    ]
    return [_allocation_out(a) for a in visible]


@router.post("/devices/allocations/{allocation_id}/removal", response_model=AllocationOut)
def remove_device(
    session: DbSession,
    principal: Annotated[Principal, require("device:write")],
    allocation_id: int,
    body: RemovalIn,
) -> AllocationOut:
    """Record the device's removal, ending the allocation."""
    with _answers():
        allocation = service.remove_device(session, principal, allocation_id, body.removed_at)
    return _allocation_out(allocation)


# Reference data ----------------------------------------------------------------------------


@router.get("/reference-data", response_model=list[ReferenceValueOut])
def list_reference_data(
    session: DbSession,
    principal: Annotated[Principal, require("refdata:read")],
    kind: str | None = None,
    active_only: bool = False,
) -> list[ReferenceValueOut]:
    values = refdata.list_values(session, kind, active_only=active_only)
    return [ReferenceValueOut.model_validate(v) for v in values]


@router.post(
    "/reference-data", status_code=status.HTTP_201_CREATED, response_model=ReferenceValueOut
)
def add_reference_value(
    session: DbSession,
    principal: Annotated[Principal, require("refdata:write")],
    body: ReferenceValueIn,
) -> ReferenceValueOut:
    try:
        value = refdata.add_value(session, body.model_dump())
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    record(session, principal, "refdata.add", subject_type="reference_value",
           subject_id=f"{value.kind}:{value.code}", detail=body.model_dump())  # fmt: skip
    return ReferenceValueOut.model_validate(value)


@router.patch("/reference-data/{kind}/{code}", response_model=ReferenceValueOut)
def change_reference_value(
    session: DbSession,
    principal: Annotated[Principal, require("refdata:write")],
    kind: str,
    code: str,
    body: ReferenceValueChange,
) -> ReferenceValueOut:
    changes = body.model_dump(exclude_unset=True)
    try:
        value = refdata.change_value(session, kind, code, changes)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    record(session, principal, "refdata.change", subject_type="reference_value",
           subject_id=f"{kind}:{code}", detail=changes)  # fmt: skip
    return ReferenceValueOut.model_validate(value)
