"""The portal's view of people, read through the cases domain's scoped queries.

Every person the portal shows comes from the cases repository's scoped look-ups, so a page
can never show someone outside the caller's caseload, delivery unit or restricted flag.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.cases import repository as cases
from tagwatch.cases.identifiers import crn as parse_crn
from tagwatch.cases.identifiers import pnc as parse_pnc
from tagwatch.cases.models import Order, Person
from tagwatch.cases.repository import PersonListing
from tagwatch.cases.views import OrderView, PersonView
from tagwatch.compliance.rules import RULES
from tagwatch.london import LONDON

__all__ = ["LONDON"]

# The curfew address is drawn as a small circle so it shows at every zoom.
CURFEW_ADDRESS_RADIUS_M = 25.0


def humanise(code: str | None) -> str:
    return (code or "").replace("_", " ").capitalize()


def rule_label(rule_id: str) -> str:
    rule = RULES.get(rule_id)
    return rule.title if rule else humanise(rule_id.replace(".", " "))


def label_of(person: Person | PersonView) -> str:
    name = person.primary_name
    return f"{name.given} {name.family}" if name else person.ref


def scope_label(principal: Principal) -> str:
    return "your delivery unit" if "probation_manager" in principal.roles else "your caseload"


@dataclass(frozen=True)
class PersonCard:
    """What the trail pages need: who, their allocations and their zones."""

    person_id: int
    ref: str
    label: str
    allocation_ids: list[int]
    zones: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Tracked:
    """A person on the live map."""

    person_id: int
    label: str
    allocation_ids: list[int]
    zones: list[dict[str, Any]]


def zones_of(orders: Sequence[Order | OrderView]) -> list[dict[str, Any]]:
    """Exclusion and inclusion zones of current orders, plus curfew addresses, for maps."""
    zones: list[dict[str, Any]] = []
    for order in orders:
        if order.status == "ended":
            continue
        for condition in order.conditions:
            if condition.type in ("exclusion_zone", "inclusion_zone") and condition.geometry:
                zones.append(
                    {
                        "kind": condition.type,
                        "name": condition.name or humanise(condition.type),
                        "geometry": condition.geometry,
                    }
                )
            elif condition.type == "curfew" and condition.address is not None:
                zones.append(
                    {
                        "kind": "curfew_address",
                        "name": f"Curfew address: {condition.address.line1}",
                        "geometry": {
                            "type": "Circle",
                            "coordinates": [condition.address.lon, condition.address.lat],
                            "radius_m": CURFEW_ADDRESS_RADIUS_M,
                        },
                    }
                )
    return zones


def curfew_addresses(orders: Sequence[Order | OrderView]) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for order in orders:
        for condition in order.conditions:
            address = condition.address
            if condition.type == "curfew" and address is not None:
                seen[address.id] = {
                    "label": f"Curfew address: {address.line1}, {address.postcode}",
                    "lat": address.lat,
                    "lon": address.lon,
                }
    return list(seen.values())


def allocation_ids_of(orders: list[Order]) -> list[int]:
    return [a.id for order in orders for a in order.allocations]


NOT_IN_CASELOAD = "No such person in your caseload"


def person_or_404(session: Session, principal: Principal, person_id: int) -> Person:
    """The person if the caller may see them; 404 otherwise (the two are not told apart)."""
    person = cases.person_by_id(session, principal, person_id)
    if person is None:
        raise HTTPException(404, NOT_IN_CASELOAD)
    return person


def person_view_or_404(session: Session, principal: Principal, person_id: int) -> PersonView:
    """`person_or_404` as rows, for pages that only show the person."""
    person = cases.person_view(session, principal, person_id)
    if person is None:
        raise HTTPException(404, NOT_IN_CASELOAD)
    return person


def person_card(session: Session, principal: Principal, person_id: int) -> PersonCard:
    person = person_or_404(session, principal, person_id)
    orders = orders_of(session, principal, person.id)
    return PersonCard(
        person_id=person.id,
        ref=person.ref,
        label=label_of(person),
        allocation_ids=allocation_ids_of(orders),
        zones=zones_of(orders),
    )


def person_labels(session: Session, principal: Principal, ids: Collection[int]) -> dict[int, str]:
    return {p.id: label_of(p) for p in cases.people_by_ids(session, principal, ids)}


def tracked_caseload(session: Session, principal: Principal) -> list[Tracked]:
    """People in scope with a device fitted now, on orders the caller may see."""
    orders = cases.open_orders(session, principal)
    by_person: dict[int, list[Order]] = {}
    for order in orders:
        by_person.setdefault(order.person_id, []).append(order)
    labels = person_labels(session, principal, list(by_person))
    tracked = []
    for person_id, person_orders in by_person.items():
        current = [a.id for o in person_orders for a in o.allocations if a.removed_at is None]
        if current and person_id in labels:
            tracked.append(Tracked(person_id, labels[person_id], current, zones_of(person_orders)))
    return sorted(tracked, key=lambda t: t.label)


def orders_of(session: Session, principal: Principal, person_id: int) -> list[Order]:
    return cases.orders_of(session, principal, person_id)


def search_terms(q: str) -> cases.PersonSearch:
    """A CRN or PNC when the text is one, else a name (apostrophes and hyphens kept)."""
    try:
        return cases.PersonSearch(crn=parse_crn(q))
    except ValueError:
        pass
    try:
        return cases.PersonSearch(pnc=parse_pnc(q))
    except ValueError:
        return cases.PersonSearch(name=q)


def caseload_entries(
    session: Session, principal: Principal, q: str | None, date_of_birth: Any, limit: int
) -> list[PersonListing]:
    """People in scope, or those matching the search terms (cases' own search)."""
    if not (q or date_of_birth):
        return cases.people_in_scope(session, principal)
    terms = search_terms(q) if q else cases.PersonSearch()
    terms = cases.PersonSearch(
        name=terms.name,
        crn=terms.crn,
        pnc=terms.pnc,
        date_of_birth=date_of_birth,
        page_size=limit,
    )
    found, _total = cases.search_people(session, principal, terms)
    return [_listing(p) for p in found]


def _listing(person: Person) -> PersonListing:
    name = person.primary_name
    return PersonListing(
        person.id,
        person.ref,
        name.given if name else "",
        name.family if name else person.ref,
        person.date_of_birth,
        person.crn,
    )
