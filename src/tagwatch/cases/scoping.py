"""What a caller may see of people and orders: caseload, delivery unit, region, restriction.

Every people and order query in the repository goes through these, so scope is enforced
where the data is read, not only where it is shown.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, false, select

from tagwatch.access.principal import Principal
from tagwatch.cases.models import Order, Person

# Any SELECT, of whole rows or of columns; narrowing keeps its row type.
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


def order_scope(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on `Order` for the caller's scope; None when national (sees everything)."""
    if principal.team_id is not None:
        # Imported here: access's models are not needed to load the case record's own tables.
        from tagwatch.access.models import User

        team_usernames = select(User.username).where(User.team_id == principal.team_id)
        return Order.responsible_officer.in_(team_usernames)
    if principal.delivery_unit_code:
        return Order.delivery_unit_code == principal.delivery_unit_code
    if principal.region_code:
        return Order.region_code == principal.region_code
    return None


def _sees_no_people(principal: Principal) -> bool:
    # Police officers reach people only through crime matching and data requests.
    return (
        principal.force_code is not None
        and principal.team_id is None
        and not (principal.delivery_unit_code or principal.region_code)
    )


def scope_people(query: Query, principal: Principal) -> Query:
    """Narrow a SELECT over `Person` to the people the caller may see."""
    if _sees_no_people(principal):
        return query.where(false())
    if not principal.has("restricted:read"):
        query = query.where(Person.restricted.is_(False))
    condition = order_scope(principal)
    if condition is not None:
        query = query.where(Person.id.in_(select(Order.person_id).where(condition)))
    return query


def scope_orders(query: Query, principal: Principal) -> Query:
    """Narrow a SELECT over `Order` to the orders the caller may see."""
    if _sees_no_people(principal):
        return query.where(false())
    if not principal.has("restricted:read"):
        # Correlated, so it is one look-up per order: `IN (SELECT unrestricted people)` would
        # list everyone in the store for every query.
        query = query.where(
            exists().where(Person.id == Order.person_id, Person.restricted.is_(False))
        )
    condition = order_scope(principal)
    if condition is not None:
        query = query.where(condition)
    return query
