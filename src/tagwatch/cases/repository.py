"""All SQL of the case record. People and order reads take the caller and are scoped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Executable, Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, selectinload

from tagwatch.access.principal import Principal
from tagwatch.cases.identifiers import IDENTIFIER_KEYS
from tagwatch.cases.models import (
    Address,
    Allocation,
    Condition,
    Device,
    Order,
    OrderVersion,
    Person,
    PersonName,
    SafeguardingCheck,
)
from tagwatch.cases.names import fold
from tagwatch.cases.scoping import scope_orders, scope_people
from tagwatch.cases.views import (
    AddressView,
    AllocationView,
    ConditionView,
    DeviceView,
    NameView,
    OrderView,
    PersonView,
    SafeguardingCheckView,
    VersionView,
)

PERSON_LOAD = (
    selectinload(Person.names),
    selectinload(Person.addresses).selectinload(Address.safeguarding_checks),
)
ORDER_LOAD = (
    selectinload(Order.conditions)
    .selectinload(Condition.address)
    .selectinload(Address.safeguarding_checks),
    selectinload(Order.allocations).selectinload(Allocation.device),
    selectinload(Order.versions),
)


def person_by_ref(session: Session, principal: Principal | None, ref: str) -> Person | None:
    """The person with `ref` if the caller may see them (None caller: the system itself)."""
    query = select(Person).where(Person.ref == ref).options(*PERSON_LOAD)
    if principal is not None:
        query = scope_people(query, principal)
    return session.scalars(query).one_or_none()


def person_by_id(session: Session, principal: Principal | None, person_id: int) -> Person | None:
    """The person with this id if the caller may see them (None caller: the system itself)."""
    query = select(Person).where(Person.id == person_id).options(*PERSON_LOAD)
    if principal is not None:
        query = scope_people(query, principal)
    return session.scalars(query).one_or_none()


def _rows(session: Session, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
    """Rows of a SELECT of columns, on the session's connection (so in its transaction):
    the ORM's result handling is for objects, and costs a third again for plain rows."""
    return session.connection().execute(statement, params)


# --- a person's case file as rows (`views`), for pages that only show it ----------------

_PERSON_VIEW = (
    Person.id,
    Person.ref,
    Person.date_of_birth,
    Person.crn,
    Person.pnc,
    Person.nomis,
    Person.sex,
    Person.gender,
    Person.nationality,
    Person.language,
    Person.interpreter_needed,
)
_ADDRESSES = (
    select(Address.id, Address.line1, Address.town, Address.postcode, Address.lat, Address.lon)
    .where(Address.person_id == bindparam("person_id"))
    .order_by(Address.id)
)
_ORDER_VIEW = (
    Order.id,
    Order.ref,
    Order.type,
    Order.status,
    Order.start_date,
    Order.end_date,
    Order.responsible_officer,
    Order.delivery_unit_code,
    Order.region_code,
    Order.notifying_org_kind,
    Order.notifying_org_name,
)
_ORDER_IDS: BindParameter[list[int]] = bindparam("order_ids", expanding=True)
_CONDITIONS = (
    select(
        Condition.order_id,
        Condition.id,
        Condition.type,
        Condition.start,
        Condition.end,
        Condition.name,
        Condition.geometry,
        Condition.timetable,
        Address.id,
        Address.line1,
        Address.town,
        Address.postcode,
        Address.lat,
        Address.lon,
    )
    .outerjoin(Address, Address.id == Condition.address_id)
    .where(Condition.order_id.in_(_ORDER_IDS))
    .order_by(Condition.id)
)
_CHECKS = (
    select(
        SafeguardingCheck.address_id,
        SafeguardingCheck.kind,
        SafeguardingCheck.outcome,
        SafeguardingCheck.checked_by,
        SafeguardingCheck.checked_at,
    )
    .where(SafeguardingCheck.address_id.in_(bindparam("address_ids", expanding=True)))
    .order_by(SafeguardingCheck.id)
)
_ALLOCATIONS = (
    select(
        Allocation.order_id,
        Allocation.id,
        Allocation.fitted_at,
        Allocation.removed_at,
        Device.type,
        Device.serial,
        Device.model,
        Device.batch,
    )
    .join(Device, Device.id == Allocation.device_id)
    .where(Allocation.order_id.in_(_ORDER_IDS))
    .order_by(Allocation.id)
)
_VERSIONS = (
    select(
        OrderVersion.order_id,
        OrderVersion.version,
        OrderVersion.at,
        OrderVersion.by,
        OrderVersion.reason,
        OrderVersion.changes,
    )
    .where(OrderVersion.order_id.in_(_ORDER_IDS))
    .order_by(OrderVersion.version)
)


def person_view(session: Session, principal: Principal, person_id: int) -> PersonView | None:
    """`person_by_id` as rows: the person if the caller may see them, with names and addresses
    (the addresses without their safeguarding checks, which only conditions' addresses show)."""
    # The person with their names, a row per name (one round trip fewer than asking twice).
    query = (
        select(*_PERSON_VIEW, PersonName.kind, PersonName.given, PersonName.family)
        .outerjoin(PersonName, PersonName.person_id == Person.id)
        .where(Person.id == person_id)
        .order_by(PersonName.id)
    )
    rows = _rows(session, scope_people(query, principal)).all()
    if not rows:
        return None
    width = len(_PERSON_VIEW)
    names = tuple(NameView(*row[width:]) for row in rows if row[width] is not None)
    addresses = _rows(session, _ADDRESSES, {"person_id": person_id})
    return PersonView(*(*rows[0][:width], names, tuple(AddressView(*a) for a in addresses)))


def order_views(session: Session, principal: Principal, person_id: int) -> list[OrderView]:
    """`orders_of` as rows: the person's orders the caller may see, by id, each with its
    conditions (and their addresses' safeguarding checks), allocations and versions."""
    query = scope_orders(select(*_ORDER_VIEW).where(Order.person_id == person_id), principal)
    orders = _rows(session, query.order_by(Order.id)).all()
    if not orders:
        return []
    ids = {"order_ids": [order.id for order in orders]}
    condition_rows = _rows(session, _CONDITIONS, ids).all()
    address_ids = sorted({row[8] for row in condition_rows if row[8] is not None})
    checks: dict[int, list[SafeguardingCheckView]] = {}
    if address_ids:
        for address_id, *check in _rows(session, _CHECKS, {"address_ids": address_ids}):
            checks.setdefault(address_id, []).append(SafeguardingCheckView(*check))
    conditions: dict[int, list[ConditionView]] = {}
    for order_id, *fields, address_id, line1, town, postcode, lat, lon in condition_rows:
        address = (
            None
            if address_id is None
            else AddressView(
                address_id, line1, town, postcode, lat, lon, tuple(checks.get(address_id, ()))
            )
        )
        conditions.setdefault(order_id, []).append(ConditionView(*(*fields, address)))
    allocations: dict[int, list[AllocationView]] = {}
    for order_id, allocation_id, fitted, removed, *device in _rows(session, _ALLOCATIONS, ids):
        allocations.setdefault(order_id, []).append(
            AllocationView(allocation_id, fitted, removed, DeviceView(*device))
        )
    versions: dict[int, list[VersionView]] = {}
    for order_id, *version in _rows(session, _VERSIONS, ids):
        versions.setdefault(order_id, []).append(VersionView(*version))
    return [
        OrderView(
            *(
                *order,
                tuple(conditions.get(order.id, ())),
                tuple(allocations.get(order.id, ())),
                tuple(versions.get(order.id, ())),
            )
        )
        for order in orders
    ]


# Ids per IN list: well inside every backend's limit on bound parameters.
_IDS_PER_QUERY = 500


def _in_chunks(ids: Collection[int]) -> list[list[int]]:
    wanted = sorted(set(ids))
    return [wanted[i : i + _IDS_PER_QUERY] for i in range(0, len(wanted), _IDS_PER_QUERY)]


def people_by_ids(session: Session, principal: Principal, ids: Collection[int]) -> list[Person]:
    """Those of these people the caller may see, with their names (others are left out)."""
    found: list[Person] = []
    for part in _in_chunks(ids):
        query = scope_people(select(Person).where(Person.id.in_(part)), principal)
        found.extend(session.scalars(query.options(selectinload(Person.names))))
    return found


@dataclass(frozen=True)
class PersonListing:
    """A person as a list shows them: only the columns a caseload needs, for speed."""

    id: int
    ref: str
    given: str
    family: str
    date_of_birth: dt.date
    crn: str | None

    @property
    def label(self) -> str:
        return f"{self.given} {self.family}"


def people_in_scope(session: Session, principal: Principal) -> list[PersonListing]:
    """Everyone the caller may see (their caseload, delivery unit or region), by primary name."""
    query = scope_people(
        select(
            Person.id,
            Person.ref,
            PersonName.given,
            PersonName.family,
            Person.date_of_birth,
            Person.crn,
        ).join(PersonName, (PersonName.person_id == Person.id) & (PersonName.kind == "primary")),
        principal,
    )
    return [PersonListing(*row) for row in _rows(session, query)]


def people_with_identifiers(session: Session, values: dict[str, str]) -> list[Person]:
    """Everyone (unscoped: uniqueness is global) holding any of these identifier values."""
    clauses = [getattr(Person, key) == value for key, value in values.items() if value]
    if not clauses:
        return []
    return list(session.scalars(select(Person).where(or_(*clauses))))


def people_named(session: Session, given: str, family: str, date_of_birth: dt.date) -> list[Person]:
    """Everyone with a name that folds alike and the same date of birth (unscoped)."""
    folded = fold(f"{given} {family}")
    query = (
        select(Person)
        .join(PersonName)
        .where(PersonName.normalised == folded, Person.date_of_birth == date_of_birth)
        .distinct()
        .order_by(Person.id)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class PersonSearch:
    name: str | None = None
    crn: str | None = None
    pnc: str | None = None
    date_of_birth: dt.date | None = None
    page: int = 1
    page_size: int = 25


def search_people(
    session: Session, principal: Principal, terms: PersonSearch
) -> tuple[list[Person], int]:
    """A page of people in scope matching every given term, and how many match in all."""
    query: Select[tuple[Person]] = select(Person)
    if terms.name:
        for token in fold(terms.name).split():
            query = query.where(
                Person.id.in_(
                    select(PersonName.person_id).where(
                        PersonName.normalised.contains(token, autoescape=True)
                    )
                )
            )
    if terms.crn:
        query = query.where(Person.crn == terms.crn)
    if terms.pnc:
        query = query.where(Person.pnc == terms.pnc)
    if terms.date_of_birth:
        query = query.where(Person.date_of_birth == terms.date_of_birth)
    query = scope_people(query, principal)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = (
        query.options(*PERSON_LOAD)
        .order_by(Person.ref)
        .limit(terms.page_size)
        .offset((terms.page - 1) * terms.page_size)
    )
    return list(session.scalars(page)), total


def order_by_ref(session: Session, principal: Principal | None, ref: str) -> Order | None:
    query = select(Order).where(Order.ref == ref).options(*ORDER_LOAD)
    if principal is not None:
        query = scope_orders(query, principal)
    return session.scalars(query).one_or_none()


def orders_of(session: Session, principal: Principal, person_id: int) -> list[Order]:
    query = scope_orders(select(Order).where(Order.person_id == person_id), principal)
    return list(session.scalars(query.options(*ORDER_LOAD).order_by(Order.id)))


def open_orders(
    session: Session, principal: Principal, person_ids: Collection[int] | None = None
) -> list[Order]:
    """Orders not yet ended that the caller may see (only these people's, when given), by id."""
    query = scope_orders(select(Order).where(Order.status != "ended"), principal)
    query = query.options(*ORDER_LOAD)
    if person_ids is None:
        return list(session.scalars(query.order_by(Order.id)))
    found: list[Order] = []
    for part in _in_chunks(person_ids):
        found.extend(session.scalars(query.where(Order.person_id.in_(part))))
    return sorted(found, key=lambda order: order.id)


def versions_of(session: Session, order_id: int) -> list[OrderVersion]:
    query = (
        select(OrderVersion).where(OrderVersion.order_id == order_id).order_by(OrderVersion.version)
    )
    return list(session.scalars(query))


def open_orders_with_curfew_at(session: Session, address_id: int) -> list[Order]:
    query = (
        select(Order)
        .join(Condition)
        .where(
            Condition.address_id == address_id, Condition.type == "curfew", Order.status != "ended"
        )
        .distinct()
        .options(*ORDER_LOAD)
    )
    return list(session.scalars(query))


def device_by_serial(session: Session, serial: str) -> Device | None:
    return session.scalars(select(Device).where(Device.serial == serial)).one_or_none()


def devices_by_serial(session: Session, serials: Iterable[str]) -> dict[str, Device]:
    wanted = list(set(serials))
    found: dict[str, Device] = {}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        found.update(
            {d.serial: d for d in session.scalars(select(Device).where(Device.serial.in_(chunk)))}
        )
    return found


def list_devices(session: Session, *, page: int, page_size: int) -> list[Device]:
    query = select(Device).order_by(Device.serial).limit(page_size).offset((page - 1) * page_size)
    return list(session.scalars(query))


def allocations_of_device(session: Session, device_id: int) -> list[Allocation]:
    query = (
        select(Allocation).where(Allocation.device_id == device_id).order_by(Allocation.fitted_at)
    )
    return list(session.scalars(query))


def allocation_by_id(
    session: Session, principal: Principal, allocation_id: int
) -> Allocation | None:
    visible = scope_orders(select(Order.id), principal)
    query = select(Allocation).where(
        Allocation.id == allocation_id, Allocation.order_id.in_(visible)
    )
    return session.scalars(query).one_or_none()


def all_people_for_export(session: Session, principal: Principal | None) -> list[Person]:
    query = (
        select(Person)
        .order_by(Person.ref)
        .options(
            *PERSON_LOAD,
            selectinload(Person.orders).options(*ORDER_LOAD),
        )
    )
    if principal is not None:
        query = scope_people(query, principal)
    return list(session.scalars(query))


def all_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.serial)))


def identifier_owners(session: Session) -> dict[tuple[str, str], str]:
    """(identifier key, value) -> person ref, for every identifier held (import checks)."""
    columns = [getattr(Person, key) for key in IDENTIFIER_KEYS]
    owners: dict[tuple[str, str], str] = {}
    for row in session.execute(select(Person.ref, *columns)):
        for key, value in zip(IDENTIFIER_KEYS, row[1:], strict=True):
            if value is not None:
                owners[(key, value)] = row[0]
    return owners


def order_owners(session: Session) -> dict[str, str]:
    """Order ref -> person ref, for every order."""
    query = select(Order.ref, Person.ref).join(Person, Order.person_id == Person.id)
    return dict(session.execute(query).all())
