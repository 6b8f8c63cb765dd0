"""Which alerts a caller may see: those on orders in their scope (caseload, unit, region)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from tagwatch.access.principal import Principal
from tagwatch.alerts.models import Alert
from tagwatch.cases.models import Order
from tagwatch.cases.scoping import scope_orders


def visible_to(principal: Principal) -> ColumnElement[bool]:
    return Alert.order_id.in_(scope_orders(select(Order.id), principal))
