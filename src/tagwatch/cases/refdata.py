"""Reference data: regions, delivery units, police forces and other code lists, one table."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.cases.models import ReferenceValue
from tagwatch.cases.validation import RefData

SEED_FILE = Path(__file__).with_name("data") / "reference_values.json"
KINDS: tuple[str, ...] = (
    "region",
    "delivery_unit",
    "police_force",
    "order_type",
    "sentence_type",
    "ethnicity",
    "crime_type",
)


@cache
def seed_values() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(SEED_FILE.read_text(encoding="utf-8")))


def seed_reference_data(session: Session) -> int:
    """Add the public values that are missing; existing rows (maybe edited) are left alone.

    Returns how many were added.
    """
    existing = set(session.execute(select(ReferenceValue.kind, ReferenceValue.code)))
    added = [
        ReferenceValue(active=True, **value)
        for value in seed_values()
        if (value["kind"], value["code"]) not in existing
    ]
    session.add_all(added)
    session.flush()
    return len(added)


def list_values(
    session: Session, kind: str | None = None, *, active_only: bool = False
) -> list[ReferenceValue]:
    query = select(ReferenceValue).order_by(
        ReferenceValue.kind, ReferenceValue.sort_order, ReferenceValue.code
    )
    if kind:
        query = query.where(ReferenceValue.kind == kind)
    if active_only:
        query = query.where(ReferenceValue.active.is_(True))
    return list(session.scalars(query))


def order_refdata(session: Session) -> RefData:
    """The active regions and delivery units orders are checked against."""
    rows = session.execute(
        select(ReferenceValue.kind, ReferenceValue.code, ReferenceValue.parent_code).where(
            ReferenceValue.kind.in_(("region", "delivery_unit")), ReferenceValue.active.is_(True)
        )
    )
    regions: set[str] = set()
    units: dict[str, str | None] = {}
    for kind, code, parent in rows:
        if kind == "region":
            regions.add(code)
        else:
            units[code] = parent
    return RefData(frozenset(regions), units)


def _check_parent(session: Session, kind: str, parent_code: str | None) -> None:
    if kind == "delivery_unit":
        region = session.scalar(
            select(ReferenceValue.id).where(
                ReferenceValue.kind == "region", ReferenceValue.code == (parent_code or "")
            )
        )
        if region is None:
            raise ValueError(f"parent_code: {parent_code!r} is not a region")


def add_value(session: Session, data: dict[str, Any]) -> ReferenceValue:
    """A new value; ValueError when it exists or its parent does not."""
    if session.scalar(
        select(ReferenceValue.id).where(
            ReferenceValue.kind == data["kind"], ReferenceValue.code == data["code"]
        )
    ):
        raise ValueError(f"code: {data['kind']} {data['code']} already exists")
    _check_parent(session, data["kind"], data.get("parent_code"))
    value = ReferenceValue(**data)
    session.add(value)
    session.flush()
    return value


def change_value(session: Session, kind: str, code: str, changes: dict[str, Any]) -> ReferenceValue:
    """Relabel, re-parent, retire (active false) or reorder a value; codes never change."""
    value = session.scalars(
        select(ReferenceValue).where(ReferenceValue.kind == kind, ReferenceValue.code == code)
    ).one_or_none()
    if value is None:
        raise LookupError(f"no {kind} {code}")
    if "parent_code" in changes:
        _check_parent(session, kind, changes["parent_code"])
    for key, item in changes.items():
        setattr(value, key, item)
    session.flush()
    return value
